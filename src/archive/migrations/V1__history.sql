-- The market's history: orders, trades and proofs archived from Redis, and how far each
-- statement's event log has been applied. Written only by the archiver of each
-- statement's owner (see src/archive), read by every node when Redis no longer holds a
-- record. Times are Unix milliseconds, amounts micro-units (both fit BIGINT: costs are
-- at most 10^18 micro-units).

-- Every order the event log has told of, in its latest archived state. Closed orders
-- (completed, withdrawn) are final; open ones are refreshed by later events.
CREATE TABLE orders (
    key           BIGINT PRIMARY KEY,
    side          TEXT   NOT NULL CHECK (side IN ('request', 'proposal')),
    statement_key BIGINT NOT NULL,
    status        TEXT   NOT NULL,
    cost          BIGINT NOT NULL,
    eval_time     INTEGER,
    wait_period   INTEGER,
    sender        TEXT   NOT NULL,
    created_on    BIGINT NOT NULL,
    updated_on    BIGINT NOT NULL,
    seq           BIGINT NOT NULL,
    input         TEXT,
    canon         TEXT,
    counterpart   BIGINT,
    matched_time  BIGINT,
    price         BIGINT,
    proof_key     BIGINT
);
-- List filters: a side with a status, a sender, a statement (each in key order).
CREATE INDEX orders_by_status    ON orders (side, status, key);
CREATE INDEX orders_by_sender    ON orders (side, sender, key);
CREATE INDEX orders_by_statement ON orders (side, statement_key, key);
-- A producer's record: its proposals over time.
CREATE INDEX orders_by_producer  ON orders (sender, updated_on) WHERE side = 'proposal';

-- Every match (trade): the market data of a statement over time.
CREATE TABLE trades (
    request_key   BIGINT NOT NULL,
    proposal_key  BIGINT NOT NULL,
    statement_key BIGINT NOT NULL,
    price         BIGINT NOT NULL,
    matched_time  BIGINT NOT NULL,
    PRIMARY KEY (request_key, proposal_key)
);
CREATE INDEX trades_by_statement_time ON trades (statement_key, matched_time);

-- Every proof, with its bytes (the only copy once Redis has dropped it).
CREATE TABLE proofs (
    key           BIGINT PRIMARY KEY,
    statement_key BIGINT NOT NULL,
    request_key   BIGINT NOT NULL,
    proposal_key  BIGINT NOT NULL,
    sender        TEXT   NOT NULL,
    input         TEXT   NOT NULL,
    generation_ms BIGINT NOT NULL,
    created_on    BIGINT NOT NULL,
    output        TEXT,
    proof_system  TEXT   NOT NULL,
    proof         BYTEA  NOT NULL
);
CREATE INDEX proofs_by_request   ON proofs (request_key);
CREATE INDEX proofs_by_statement ON proofs (statement_key, created_on);
CREATE INDEX proofs_by_producer  ON proofs (sender, created_on);

-- How far each statement's event log is applied (event numbers start at 1), and the
-- fencing token of the last owner that wrote it: a stale owner's transaction sees a
-- newer token here and rolls back.
CREATE TABLE archive_cursor (
    statement_key BIGINT PRIMARY KEY,
    event_seq     BIGINT NOT NULL,
    fence         BIGINT NOT NULL
);
