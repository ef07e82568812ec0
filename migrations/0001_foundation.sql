-- 0001 foundation: shops, API keys, idempotency records, customers.
-- Every row belongs to a shop; every query of a shop key is scoped by it.

CREATE TABLE shops (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    currency    char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    timezone    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE shops IS 'Merchants served by this deployment; the tenant of every other row';
COMMENT ON COLUMN shops.id IS 'Public identifier (UUID)';
COMMENT ON COLUMN shops.name IS 'Display name, 1-200 characters';
COMMENT ON COLUMN shops.currency IS 'ISO 4217 code; all money of the shop is in its minor units; immutable';
COMMENT ON COLUMN shops.timezone IS 'IANA time zone name; metrics bucket days in it';
COMMENT ON COLUMN shops.created_at IS 'When the shop was created';
COMMENT ON COLUMN shops.updated_at IS 'When the shop was last changed';

CREATE TABLE api_keys (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    shop_id     uuid REFERENCES shops (id),
    prefix      text NOT NULL UNIQUE CHECK (prefix ~ '^[a-z2-7]{8}$'),
    hash        text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
    scope       text NOT NULL CHECK (scope IN ('platform', 'admin', 'storefront', 'readonly')),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    CHECK ((scope = 'platform') = (shop_id IS NULL))
);
CREATE INDEX api_keys_shop ON api_keys (shop_id, created_at);
COMMENT ON TABLE api_keys IS 'API keys; the secret is never stored, only its SHA-256';
COMMENT ON COLUMN api_keys.id IS 'Public identifier (UUID) used to revoke the key';
COMMENT ON COLUMN api_keys.shop_id IS 'Owning shop; NULL for platform keys, which manage shops';
COMMENT ON COLUMN api_keys.prefix IS 'The 8 base32 characters after rb_: names the key, looked up on every request';
COMMENT ON COLUMN api_keys.hash IS 'Lowercase hex SHA-256 of the whole key (rb_prefix_secret)';
COMMENT ON COLUMN api_keys.scope IS 'platform | admin | storefront | readonly';
COMMENT ON COLUMN api_keys.name IS 'What the key is for, as its creator described it';
COMMENT ON COLUMN api_keys.created_at IS 'When the key was created';
COMMENT ON COLUMN api_keys.revoked_at IS 'When the key was revoked; NULL while it is active';

CREATE TABLE idempotency_keys (
    api_key_id  uuid NOT NULL REFERENCES api_keys (id),
    key         text NOT NULL,
    fingerprint text NOT NULL,
    status      integer NOT NULL,
    body        text,
    location    text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (api_key_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
COMMENT ON TABLE idempotency_keys IS 'Responses to POSTs sent with an Idempotency-Key, replayed on retry; kept 48 hours';
COMMENT ON COLUMN idempotency_keys.api_key_id IS 'The calling API key: keys are scoped to it';
COMMENT ON COLUMN idempotency_keys.key IS 'The Idempotency-Key header value';
COMMENT ON COLUMN idempotency_keys.fingerprint IS 'SHA-256 of method, path and body: a reuse with another request is refused';
COMMENT ON COLUMN idempotency_keys.status IS 'HTTP status of the stored response';
COMMENT ON COLUMN idempotency_keys.body IS 'JSON body of the stored response, with secrets removed';
COMMENT ON COLUMN idempotency_keys.location IS 'Location header of the stored response, if any';
COMMENT ON COLUMN idempotency_keys.created_at IS 'When the request was first processed';

CREATE TABLE customers (
    seq               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shop_id           uuid NOT NULL REFERENCES shops (id),
    id                text NOT NULL CHECK (id ~ '^[A-Za-z0-9._:@-]{1,128}$'),
    name              text,
    email             text,
    phone             text,
    tags              text[] NOT NULL DEFAULT '{}',
    consent_email     boolean NOT NULL DEFAULT false,
    consent_email_at  timestamptz,
    consent_sms       boolean NOT NULL DEFAULT false,
    consent_sms_at    timestamptz,
    consent_wechat    boolean NOT NULL DEFAULT false,
    consent_wechat_at timestamptz,
    attributes        jsonb NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    erased_at         timestamptz,
    UNIQUE (shop_id, id)
);
CREATE INDEX customers_shop_seq ON customers (shop_id, seq);
CREATE INDEX customers_tags ON customers USING gin (tags);
COMMENT ON TABLE customers IS 'A shop''s customers, addressed by the storefront''s own id';
COMMENT ON COLUMN customers.seq IS 'Internal insertion order: the keyset of list cursors';
COMMENT ON COLUMN customers.shop_id IS 'Owning shop';
COMMENT ON COLUMN customers.id IS 'The storefront''s customer id: 1-128 of [A-Za-z0-9._:@-]';
COMMENT ON COLUMN customers.name IS 'Personal data: display name; NULL after erasure';
COMMENT ON COLUMN customers.email IS 'Personal data: email address; NULL after erasure';
COMMENT ON COLUMN customers.phone IS 'Personal data: phone number; NULL after erasure';
COMMENT ON COLUMN customers.tags IS 'Storefront labels used to filter lists';
COMMENT ON COLUMN customers.consent_email IS 'Marketing consent for email';
COMMENT ON COLUMN customers.consent_email_at IS 'When email consent was last given or withdrawn';
COMMENT ON COLUMN customers.consent_sms IS 'Marketing consent for SMS';
COMMENT ON COLUMN customers.consent_sms_at IS 'When SMS consent was last given or withdrawn';
COMMENT ON COLUMN customers.consent_wechat IS 'Marketing consent for WeChat';
COMMENT ON COLUMN customers.consent_wechat_at IS 'When WeChat consent was last given or withdrawn';
COMMENT ON COLUMN customers.attributes IS 'Personal data: free-form storefront attributes (JSON object, <= 4 KiB)';
COMMENT ON COLUMN customers.created_at IS 'When rebuy first saw the customer';
COMMENT ON COLUMN customers.updated_at IS 'When the profile last changed';
COMMENT ON COLUMN customers.erased_at IS 'When personal data was erased; purchase history stays for metrics';

-- JSON representations, shared by every statement that returns the object.
CREATE FUNCTION rfc3339(t timestamptz) RETURNS text LANGUAGE sql STABLE STRICT AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;
COMMENT ON FUNCTION rfc3339(timestamptz) IS 'A timestamp as the API writes it: RFC 3339, UTC, microseconds, Z';

CREATE FUNCTION shop_json(s shops) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', s.id, 'name', s.name, 'currency', s.currency,
        'timezone', s.timezone, 'created_at', rfc3339(s.created_at), 'updated_at', rfc3339(s.updated_at))
$$;
COMMENT ON FUNCTION shop_json(shops) IS 'The Shop object of the API';

CREATE FUNCTION api_key_json(k api_keys) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', k.id, 'name', k.name, 'scope', k.scope,
        'prefix', 'rb_' || k.prefix, 'created_at', rfc3339(k.created_at), 'revoked_at', rfc3339(k.revoked_at))
$$;
COMMENT ON FUNCTION api_key_json(api_keys) IS 'The ApiKey object of the API (never the secret)';

CREATE FUNCTION customer_json(c customers) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', c.id, 'name', c.name, 'email', c.email, 'phone', c.phone,
        'tags', to_json(c.tags),
        'consent', json_build_object(
            'email', json_build_object('granted', c.consent_email, 'updated_at', rfc3339(c.consent_email_at)),
            'sms', json_build_object('granted', c.consent_sms, 'updated_at', rfc3339(c.consent_sms_at)),
            'wechat', json_build_object('granted', c.consent_wechat, 'updated_at', rfc3339(c.consent_wechat_at))),
        'attributes', c.attributes, 'created_at', rfc3339(c.created_at), 'updated_at', rfc3339(c.updated_at),
        'erased_at', rfc3339(c.erased_at))
$$;
COMMENT ON FUNCTION customer_json(customers) IS 'The Customer object of the API';
