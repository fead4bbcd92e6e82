-- Orders ship committed stock: a hold can end "fulfilled".
ALTER TABLE stock_holds DROP CONSTRAINT stock_holds_status_check;
ALTER TABLE stock_holds ADD CONSTRAINT stock_holds_status_check
  CHECK (status IN ('held', 'committed', 'released', 'expired', 'fulfilled'));
