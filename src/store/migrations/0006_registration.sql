-- Gateways open registration created that have not confirmed a CUPS generation
-- yet, kept as a flag: the `[gateways] max_unconfirmed` check on every
-- registration then reads a small partial index instead of every gateway with a
-- credentials lookup each (quadratic as a fleet grows).
ALTER TABLE gateways ADD COLUMN awaiting_confirmation INTEGER NOT NULL DEFAULT 0;
UPDATE gateways SET awaiting_confirmation = 1
 WHERE origin = 'cups'
   AND NOT EXISTS (SELECT 1 FROM credentials c WHERE c.gateway_id = gateways.id
                     AND c.service = 'CUPS' AND c.confirmed_at IS NOT NULL);
CREATE INDEX gateways_awaiting_confirmation ON gateways(awaiting_confirmation)
 WHERE awaiting_confirmation = 1;
