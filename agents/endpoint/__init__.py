"""endpoint: EDR telemetry, Windows and Sysmon events, process trees and host artefacts."""
