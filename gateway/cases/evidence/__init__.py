"""Evidence of a case: content-addressed blobs, the custody chain, the hash-chained ledger."""
