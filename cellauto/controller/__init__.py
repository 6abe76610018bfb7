"""Controllers: services that run a site's batches from one PostgreSQL journal.

A batch is submitted to the run queue (:mod:`cellauto.controller.queue`, ``cellauto run
--queue``); a controller service (:mod:`cellauto.controller.service`, ``cellauto
controller``) takes the queued runs of its line and runs them; each controller's
presence is an advisory lock its control session holds
(:mod:`cellauto.controller.presence`); when a peer's presence ends, the survivors take
its runs over and resume them (:mod:`cellauto.controller.takeover`), each only the runs
whose instruments its line reaches (:mod:`cellauto.controller.reach`).
"""
