-- Schema version 7 belongs to the passkey tables; this file holds its place so that the
-- versions stay numbered without gaps, and gives way to them.
SELECT 1;
