"""What a plant knows besides runs: people (accounts, roles, training, signatures).

Below the runner, above the records: the runner asks this layer who may act; the
faces (CLI, web app) use it to sign people in and to write their acts; everything it
decides is written to the site chain of the journal (:mod:`cellauto.records`).
"""
