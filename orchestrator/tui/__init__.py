"""`octy-orchestrate top`: a live view of a team, built with Textual.

``data`` reads (no Textual), ``widgets`` draws, ``app`` wires keys and refreshes.
Only the ``top`` verb imports this package, so the other verbs never load Textual.
"""
