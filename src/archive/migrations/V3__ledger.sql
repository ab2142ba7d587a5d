-- Statement accounts (issue 12): every movement of a user's money on a statement, in
-- micro-units (signed changes; NUMERIC: amounts pass 2^63), from the statement's
-- `moved` events. A user's account on a statement is the sum of its rows (and of any
-- movements not archived yet).
CREATE TABLE ledger (
    statement_key BIGINT NOT NULL,
    event_seq BIGINT NOT NULL,
    idx INTEGER NOT NULL,
    user_name TEXT NOT NULL,
    balance NUMERIC NOT NULL,
    blocked NUMERIC NOT NULL,
    deposit NUMERIC NOT NULL,
    locked NUMERIC NOT NULL,
    kind TEXT NOT NULL,
    order_key BIGINT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (statement_key, event_seq, idx)
);
CREATE INDEX ledger_user ON ledger (user_name, statement_key);
