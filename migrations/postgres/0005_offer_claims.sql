-- The credits read model renamed its table of offer redemptions (`offer_claims`, rebuilt
-- from the log at start); the old one goes.
DROP TABLE IF EXISTS claim_campaigns;
