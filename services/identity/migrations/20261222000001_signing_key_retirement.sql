-- A retired key signs nothing new and verifies until the last token it signed has expired;
-- then it is deleted (`eventhive keys rotate`). Private keys are sealed with the deployment's
-- secret key from now on (tokens.rs); those stored in the clear are sealed at the next start.
ALTER TABLE signing_keys ADD COLUMN retired_at BIGINT;
