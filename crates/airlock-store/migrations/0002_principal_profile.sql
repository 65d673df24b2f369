-- An agent's guard profile (`[profile.NAME]` in the config): its budgets, rate limits and
-- anomaly settings. NULL means the top-level `[guards]` and `[anomaly]`.
ALTER TABLE principals ADD COLUMN profile TEXT;
