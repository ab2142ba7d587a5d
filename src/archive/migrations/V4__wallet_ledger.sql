-- Wallet ledgers (issue 12): every movement of a wallet's own money (signup, operator
-- credit, deposit and release, money sent to a statement's account and refunded,
-- payouts and sweeps from statements), archived from the wallet's Redis stream
-- `{u:<name>}:led` and then trimmed there. Keyed by the lowercased user name and the
-- entry's stream id (Redis's ms time and sequence), so writing an entry twice adds
-- nothing. A wallet's balance and deposit are the sums of its rows here plus the
-- entries Redis still holds.
CREATE TABLE wallet_ledger (
    user_name TEXT NOT NULL,
    at BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    balance NUMERIC NOT NULL,
    deposit NUMERIC NOT NULL,
    reference TEXT NOT NULL,
    PRIMARY KEY (user_name, at, seq)
);
