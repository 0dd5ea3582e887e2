"""The scripted model's machinery; the public surface is :mod:`orchestrator.scripted_model`."""
