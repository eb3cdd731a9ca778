-- Throttles of passwords and second-factor codes, shared by every API node. Keys are keyed
-- hashes of the account and the IP: no address or IP is stored in clear.
CREATE TABLE throttle_counters (
    throttle      TEXT NOT NULL,
    key           TEXT NOT NULL,
    failures      BIGINT NOT NULL,
    window_start  BIGINT NOT NULL,
    blocked_until BIGINT,
    expires_at    BIGINT NOT NULL,
    PRIMARY KEY (throttle, key)
);
CREATE INDEX throttle_counters_expiry ON throttle_counters (expires_at);

-- (account, IP) pairs that succeeded recently: exempt from the account-wide lock, so an
-- attacker cannot lock the owner out.
CREATE TABLE throttle_known_devices (
    throttle    TEXT NOT NULL,
    account_key TEXT NOT NULL,
    ip_key      TEXT NOT NULL,
    seen_at     BIGINT NOT NULL,
    PRIMARY KEY (throttle, account_key, ip_key)
);
