"""Helpers and subprocess scripts for the mailbox tests (tests/test_mailbox_*.py)."""
