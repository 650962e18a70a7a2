"""Sync to bucket, on the single-user server.

Pure rooms first: :mod:`.plan` (what to upload, restore or delete), :mod:`.listing`,
:mod:`.manifest`, :mod:`.hashing`. The object store behind an interface (:mod:`.store`), with S3
in :mod:`.s3` (the only code that speaks S3). Then the machinery: :mod:`.engine` (runs a plan),
:mod:`.job`, :mod:`.service` (one job at a time per server), :mod:`.handlers` (REST),
:mod:`.cli` (``jupyter hybrid-sync``) and :mod:`.config` (``c.BucketSync``).
"""
