-- Deadlines (issue 12): a proposal whose producer missed its deadline is withdrawn and
-- marked with when it failed; its request went back to its book (and may have been
-- re-priced to what its escrow still covers).
ALTER TABLE orders ADD COLUMN failed BIGINT;
