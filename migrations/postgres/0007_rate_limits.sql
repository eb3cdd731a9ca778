-- Request budgets shared by every API node: the theoretical arrival time of each key's next
-- request (generic cell rate algorithm). A row whose time has passed holds nothing.
CREATE TABLE rate_limits (
    name TEXT NOT NULL,
    key  TEXT NOT NULL,
    tat  BIGINT NOT NULL,
    PRIMARY KEY (name, key)
);
