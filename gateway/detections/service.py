"""Where ``gateway.app`` finds the detection scheduler until it imports it from
:mod:`gateway.detections.runs`; the service itself is split by concern into
:mod:`~gateway.detections.rules`, :mod:`~gateway.detections.runs`,
:mod:`~gateway.detections.suppressions` and :mod:`~gateway.detections.metrics`."""

from gateway.detections.runs import DetectionScheduler

__all__ = ["DetectionScheduler"]
