"""Test doubles that speak real wire protocols, so the real client code runs against them."""
