"""The S3 implementation of the sync store: a small client with its own SigV4 signer
(:mod:`.client`, :mod:`.sigv4`) and multipart uploads (:mod:`.multipart`)."""
