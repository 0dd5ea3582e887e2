"""Helpers and subprocess scripts for the mailbox tests (tests/mailbox/test_mailbox_*.py)."""
