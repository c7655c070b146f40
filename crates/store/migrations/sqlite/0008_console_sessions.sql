-- Sessions of the support console: one per sign-in, ended by signing out, by its
-- expiry, or at once by its key's revocation (checked on every request).
CREATE TABLE console_sessions (
    id         TEXT    NOT NULL PRIMARY KEY, -- SHA-256 (hex) of the secret in the cookie
    key_id     TEXT    NOT NULL,             -- the API key signed in with
    csrf       TEXT    NOT NULL,             -- the token every form of the session carries
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    ended_at   INTEGER                       -- signed out
) WITHOUT ROWID;
