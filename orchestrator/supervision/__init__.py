"""The supervisor's machinery, one job per module; :mod:`orchestrator.supervisor` is the
async shell around it (start, watch, reload, stop).

- ``slot``: one agent's place in the team (its lifecycle, runner, events, ops lock).
- ``leftovers``: what a dead supervisor left (its leases, claudes, sandbox proxies), at start.
- ``refusals``: a write the database refuses (logged) or a database replaced (the team stops).
- ``registry``: the rows `ps` reads (its own, each agent's state, pid, meta, heartbeat).
- ``chores``: what runs on a timer (sweep, heartbeats, re-records, the roster watcher).
- ``launch``: when agents may launch (model checked, SDK imported, launcher written).
- ``restarts``: one agent's task: its sessions one after another, restarted or failed.
- ``sessions``: one session: its runner built and run, its events turned into state.
- ``depends``: ``depends_on`` after start-up: a start waits for what is on its way.
"""
