"""Tests of the Kubernetes adapter and the watch loop, against the API emulator over loopback HTTP."""
