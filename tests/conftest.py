"""Shared pytest set-up: the fixture modules of the test world (Kubernetes API emulator, AWS sandbox)."""

pytest_plugins = ["tests.support.kube", "tests.support.aws", "tests.support.world", "tests.support.sim"]
