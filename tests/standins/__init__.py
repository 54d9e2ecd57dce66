"""Vendor stand-ins for tests and rehearsals: a replayed clock, a market whose vendors misbehave
on schedule (partial intraday bars, bars without the closing auction, late revisions, missing
sessions), Alpaca's trading and data API on a local HTTP server (pytest-httpserver) with 429/503
bursts, timeouts and refusals, and a scripted Yahoo download.

Everything runs on a :class:`~tests.standins.clock.ReplayClock`: nothing sleeps in real time
except the stand-in's deliberate slow answers that exercise client timeouts (a fraction of a second).
"""
