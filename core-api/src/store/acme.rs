//! ACME state: settings, the sealed account, the certificate (key sealed),
//! challenge answers and the last attempt. Sealing is the caller's: the
//! store only ever sees sealed text.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use schemas::acme::internal::CertMeta;
use schemas::acme::{ChallengeKind, DirectoryUrl, DomainName};
use schemas::values::Email;

use super::conn::Cached;
use super::{Store, StoreError, audit, ts_from_sql, ts_to_sql};
use crate::audit::AuditRecord;

/// The ACME settings row.
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    /// The names; empty means ACME is off.
    pub domains: Vec<DomainName>,
    /// Contact address.
    pub email: Option<Email>,
    /// Directory URL.
    pub directory: DirectoryUrl,
    /// Challenge type.
    pub challenge: ChallengeKind,
    /// A renewal was asked for and not yet taken up.
    pub renew_requested: bool,
    /// When an edge last tried.
    pub last_attempt: Option<Timestamp>,
    /// Why that failed.
    pub last_error: Option<String>,
}

/// A change to the settings; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct AcmeSettingsChange {
    /// A new public address (kept with the other key/value settings).
    pub public_address: Option<String>,
    /// New names.
    pub domains: Option<Vec<DomainName>>,
    /// New contact.
    pub email: Option<Email>,
    /// New directory.
    pub directory: Option<DirectoryUrl>,
    /// New challenge type.
    pub challenge: Option<ChallengeKind>,
}

/// The stored certificate.
#[derive(Debug, Clone)]
pub struct StoredCert {
    /// What identifies it.
    pub meta: CertMeta,
    /// The chain, PEM.
    pub chain_pem: String,
    /// The key, sealed.
    pub key_sealed: String,
}

/// A stored challenge answer.
#[derive(Debug, Clone)]
pub struct StoredChallenge {
    /// The answer.
    pub value: String,
    /// TLS-ALPN-01: the certificate's key, sealed.
    pub key_sealed: Option<String>,
}

fn corrupt(column: &'static str, value: &str) -> StoreError {
    StoreError::Corrupt {
        column,
        value: value.chars().take(200).collect(),
    }
}

fn read_settings(conn: &Connection) -> Result<AcmeSettings, StoreError> {
    type Row = (
        String,
        Option<String>,
        String,
        String,
        bool,
        Option<String>,
        Option<String>,
    );
    let row: Row = conn.row(
        "SELECT domains, email, directory, challenge, renew_requested, last_attempt, last_error
         FROM acme_settings WHERE id = 1",
        [],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        },
    )?;
    let (domains, email, directory, challenge, renew_requested, last_attempt, last_error) = row;
    Ok(AcmeSettings {
        domains: serde_json::from_str(&domains).map_err(|_| corrupt("acme_settings.domains", &domains))?,
        email: email
            .map(|e| e.parse::<Email>().map_err(|_| corrupt("acme_settings.email", &e)))
            .transpose()?,
        directory: directory
            .parse()
            .map_err(|_| corrupt("acme_settings.directory", &directory))?,
        challenge: challenge
            .parse()
            .map_err(|_| corrupt("acme_settings.challenge", &challenge))?,
        renew_requested,
        last_attempt: last_attempt
            .map(|t| ts_from_sql("acme_settings.last_attempt", &t))
            .transpose()?,
        last_error,
    })
}

fn apply_change(tx: &Transaction<'_>, change: &AcmeSettingsChange) -> Result<(), StoreError> {
    if let Some(address) = &change.public_address {
        super::settings::set(tx, super::settings::PUBLIC_ADDRESS, address)?;
    }
    if let Some(domains) = &change.domains {
        let json = serde_json::to_string(domains).map_err(|_| corrupt("acme_settings.domains", "?"))?;
        tx.exec("UPDATE acme_settings SET domains = ?1 WHERE id = 1", params![json])?;
    }
    if let Some(email) = &change.email {
        tx.exec(
            "UPDATE acme_settings SET email = ?1 WHERE id = 1",
            params![email.as_str()],
        )?;
    }
    if let Some(directory) = &change.directory {
        tx.exec(
            "UPDATE acme_settings SET directory = ?1 WHERE id = 1",
            params![directory.as_str()],
        )?;
    }
    if let Some(challenge) = change.challenge {
        tx.exec(
            "UPDATE acme_settings SET challenge = ?1 WHERE id = 1",
            params![challenge.as_str()],
        )?;
    }
    Ok(())
}

fn read_cert(conn: &Connection) -> Result<Option<StoredCert>, StoreError> {
    type Row = (String, String, String, String, String, String, String);
    let row: Option<Row> = conn
        .row(
            "SELECT serial, names, issuer, not_before, not_after, chain_pem, key_sealed
             FROM acme_certificate WHERE id = 1",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            },
        )
        .optional()?;
    let Some((serial, names, issuer, not_before, not_after, chain_pem, key_sealed)) = row else {
        return Ok(None);
    };
    Ok(Some(StoredCert {
        meta: CertMeta {
            serial,
            names: serde_json::from_str(&names).map_err(|_| corrupt("acme_certificate.names", &names))?,
            issuer,
            not_before: ts_from_sql("acme_certificate.not_before", &not_before)?,
            not_after: ts_from_sql("acme_certificate.not_after", &not_after)?,
        },
        chain_pem,
        key_sealed,
    }))
}

impl Store {
    /// The ACME settings.
    pub async fn acme_settings(&self) -> Result<AcmeSettings, StoreError> {
        self.db.read(read_settings).await
    }

    /// Changes the ACME settings and audits; answers the new settings.
    pub async fn update_acme_settings(
        &self,
        change: AcmeSettingsChange,
        record: AuditRecord,
    ) -> Result<AcmeSettings, StoreError> {
        self.db
            .write(move |tx| {
                apply_change(tx, &change)?;
                audit::append(tx, &record)?;
                read_settings(tx)
            })
            .await
    }

    /// Sets the renewal flag and audits.
    pub async fn request_acme_renewal(&self, record: AuditRecord) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                tx.exec("UPDATE acme_settings SET renew_requested = 1 WHERE id = 1", [])?;
                audit::append(tx, &record)
            })
            .await
    }

    /// Clears the renewal flag; answers whether it was set. The edge that
    /// gets `true` does the renewal.
    pub async fn take_acme_renewal(&self) -> Result<bool, StoreError> {
        self.db
            .write(|tx| {
                let n = tx.exec(
                    "UPDATE acme_settings SET renew_requested = 0 WHERE id = 1 AND renew_requested = 1",
                    [],
                )?;
                Ok(n == 1)
            })
            .await
    }

    /// Grants `holder` the right to order until `until`, unless another
    /// holder's lease runs past `now`. Renewing one's own lease is allowed.
    pub async fn acquire_acme_lease(
        &self,
        holder: String,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        self.db
            .write(move |tx| {
                let n = tx.exec(
                    "UPDATE acme_settings SET lease_holder = ?1, lease_until = ?3
                     WHERE id = 1 AND (lease_holder IS NULL OR lease_holder = ?1 OR lease_until < ?2)",
                    params![holder, ts_to_sql(now), ts_to_sql(until)],
                )?;
                Ok(n == 1)
            })
            .await
    }

    /// Ends `holder`'s lease (another holder's stays).
    pub async fn release_acme_lease(&self, holder: String) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                tx.exec(
                    "UPDATE acme_settings SET lease_holder = NULL, lease_until = NULL
                     WHERE id = 1 AND lease_holder = ?1",
                    params![holder],
                )?;
                Ok(())
            })
            .await
    }

    /// Records how an issuance attempt ended.
    pub async fn record_acme_attempt(&self, at: Timestamp, error: Option<String>) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                tx.exec(
                    "UPDATE acme_settings SET last_attempt = ?1, last_error = ?2 WHERE id = 1",
                    params![ts_to_sql(at), error],
                )?;
                Ok(())
            })
            .await
    }

    /// The stored certificate.
    pub async fn acme_certificate(&self) -> Result<Option<StoredCert>, StoreError> {
        self.db.read(read_cert).await
    }

    /// Replaces the stored certificate.
    pub async fn store_acme_certificate(&self, cert: StoredCert, now: Timestamp) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                let names =
                    serde_json::to_string(&cert.meta.names).map_err(|_| corrupt("acme_certificate.names", "?"))?;
                tx.exec(
                    "INSERT INTO acme_certificate
                       (id, serial, names, issuer, not_before, not_after, chain_pem, key_sealed, stored_at)
                     VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (id) DO UPDATE SET serial = ?1, names = ?2, issuer = ?3,
                       not_before = ?4, not_after = ?5, chain_pem = ?6, key_sealed = ?7, stored_at = ?8",
                    params![
                        cert.meta.serial,
                        names,
                        cert.meta.issuer,
                        ts_to_sql(cert.meta.not_before),
                        ts_to_sql(cert.meta.not_after),
                        cert.chain_pem,
                        cert.key_sealed,
                        ts_to_sql(now)
                    ],
                )?;
                Ok(())
            })
            .await
    }

    /// The sealed account credentials for `directory`.
    pub async fn acme_account(&self, directory: String) -> Result<Option<String>, StoreError> {
        self.db
            .read(move |conn| {
                Ok(conn
                    .row(
                        "SELECT credentials_sealed FROM acme_accounts WHERE directory = ?1",
                        params![directory],
                        |r| r.get(0),
                    )
                    .optional()?)
            })
            .await
    }

    /// Stores sealed account credentials for `directory`.
    pub async fn store_acme_account(
        &self,
        directory: String,
        sealed: String,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                tx.exec(
                    "INSERT INTO acme_accounts (directory, credentials_sealed, created_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (directory) DO UPDATE SET credentials_sealed = ?2, created_at = ?3",
                    params![directory, sealed, ts_to_sql(now)],
                )?;
                Ok(())
            })
            .await
    }

    /// Stores a challenge answer until `expires_at`; drops expired ones.
    pub async fn put_acme_challenge(
        &self,
        kind: ChallengeKind,
        key: String,
        answer: StoredChallenge,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                tx.exec(
                    "DELETE FROM acme_challenges WHERE expires_at < ?1",
                    params![ts_to_sql(now)],
                )?;
                tx.exec(
                    "INSERT INTO acme_challenges (kind, key, value, key_sealed, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (kind, key) DO UPDATE SET value = ?3, key_sealed = ?4, expires_at = ?5",
                    params![
                        kind.as_str(),
                        key,
                        answer.value,
                        answer.key_sealed,
                        ts_to_sql(expires_at)
                    ],
                )?;
                Ok(())
            })
            .await
    }

    /// A challenge answer that has not expired.
    pub async fn acme_challenge(
        &self,
        kind: ChallengeKind,
        key: String,
        now: Timestamp,
    ) -> Result<Option<StoredChallenge>, StoreError> {
        self.db
            .read(move |conn| {
                Ok(conn
                    .row(
                        "SELECT value, key_sealed FROM acme_challenges
                         WHERE kind = ?1 AND key = ?2 AND expires_at >= ?3",
                        params![kind.as_str(), key, ts_to_sql(now)],
                        |r| {
                            Ok(StoredChallenge {
                                value: r.get(0)?,
                                key_sealed: r.get(1)?,
                            })
                        },
                    )
                    .optional()?)
            })
            .await
    }

    /// Removes a challenge answer (absent is fine).
    pub async fn delete_acme_challenge(&self, kind: ChallengeKind, key: String) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                tx.exec(
                    "DELETE FROM acme_challenges WHERE kind = ?1 AND key = ?2",
                    params![kind.as_str(), key],
                )?;
                Ok(())
            })
            .await
    }
}
