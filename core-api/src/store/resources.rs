//! The records and [`Store`] methods for users, devices, key links, VPN
//! servers and profiles. Every method that changes state appends its audit
//! record in the same transaction.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use schemas::api::{Device, Server, User};
use schemas::values::{DeviceId, OrgId, ServerId, UserId, WgKey};
use zeroize::Zeroizing;

use super::tunnel::{self, Touched};
use super::{Listed, Store, StoreError, audit, servers, settings, users};
use crate::audit::AuditRecord;
use crate::keys::{device_context, psk_context};
use crate::sealed::HostKey;

/// Which users of an organization to list.
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    /// Only ids after this one (the cursor).
    pub after: Option<UserId>,
    /// Page size.
    pub limit: u32,
    /// Case-insensitive substring of the name or email.
    pub search: Option<String>,
}

/// Which servers to list.
#[derive(Debug, Clone, Default)]
pub struct ServerQuery {
    /// Only ids after this one (the cursor).
    pub after: Option<ServerId>,
    /// Page size.
    pub limit: u32,
}

/// A device to create.
#[derive(Debug, Clone)]
pub struct NewDevice {
    /// The device.
    pub device: Device,
    /// Its private key sealed for `device:<id>:private_key`, when generated.
    pub private_key_sealed: Option<String>,
}

/// A server to create.
#[derive(Debug, Clone)]
pub struct NewServer {
    /// The server.
    pub server: Server,
    /// Its private key sealed for `server:<id>:private_key`.
    pub private_key_sealed: String,
}

/// A key link to create; only its token's digest is stored.
#[derive(Debug, Clone)]
pub struct NewLink {
    /// SHA-256 (hex) of the token.
    pub token_hash: String,
    /// Whose profiles it shows.
    pub user_id: UserId,
    /// When.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// How many times it may be opened.
    pub max_uses: u32,
}

/// Everything a device's profile for one server says.
#[derive(Debug)]
pub struct PeerProfile {
    /// The device.
    pub device: Device,
    /// Its private key as `wg` prints it, when the server generated it.
    pub private_key: Option<Zeroizing<String>>,
    /// The server.
    pub server: Server,
    /// The device's IPv4 address on the server.
    pub address: String,
    /// Its IPv6 address, when the server has an IPv6 network.
    pub address6: Option<String>,
    /// The pair's preshared key as `wg` prints it.
    pub preshared_key: Zeroizing<String>,
    /// The host devices connect to.
    pub public_address: String,
}

fn open_key(key: &HostKey, sealed: &str, context: &str) -> Result<Zeroizing<String>, StoreError> {
    let bytes = key.open(sealed, context)?;
    let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| StoreError::Corrupt {
        column: "sealed key length",
        value: bytes.len().to_string(),
    })?;
    Ok(Zeroizing::new(WgKey::from_bytes(&arr).into()))
}

fn public_address(conn: &Connection) -> Result<String, StoreError> {
    Ok(settings::get(conn, settings::PUBLIC_ADDRESS)?.unwrap_or_else(settings::default_public_address))
}

/// The profile of `device` on `server`, or why there is none.
fn profile(conn: &Connection, key: &HostKey, device: Device, server: Server) -> Result<PeerProfile, StoreError> {
    let (did, sid) = (device.id.to_string(), server.id.to_string());
    let row: Option<(String, Option<String>, String)> = conn
        .prepare_cached("SELECT address, address6, psk_sealed FROM peers WHERE server_id = ?1 AND device_id = ?2")?
        .query_row(params![sid, did], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let (address, address6, psk_sealed) = row.ok_or(StoreError::Conflict {
        field: "query.server",
        message: "the device's organization is not attached to this server",
    })?;
    let private_key = users::device_private_sealed(conn, &did)?
        .map(|sealed| open_key(key, &sealed, &device_context(&did)))
        .transpose()?;
    Ok(PeerProfile {
        preshared_key: open_key(key, &psk_sealed, &psk_context(&sid, &did))?,
        private_key,
        address,
        address6,
        public_address: public_address(conn)?,
        device,
        server,
    })
}

impl Store {
    // --- users -----------------------------------------------------------

    /// A page of an organization's users.
    pub async fn list_users(&self, org: OrgId, query: UserQuery) -> Result<Listed<User>, StoreError> {
        self.db.read(move |c| users::list_users(c, org, &query)).await
    }

    /// One user.
    pub async fn user(&self, id: UserId) -> Result<User, StoreError> {
        self.db.read(move |c| users::get_user(c, id)).await
    }

    /// Creates a user and audits.
    pub async fn create_user(&self, user: User, record: AuditRecord) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                users::insert_user(tx, &user)?;
                audit::append(tx, &record)
            })
            .await
    }

    /// Changes a user with `change` and audits; answers the changed user
    /// and, when it was enabled or disabled, the peers that touches.
    pub async fn update_user(
        &self,
        id: UserId,
        change: impl FnOnce(&mut User) + Send + 'static,
        record: AuditRecord,
    ) -> Result<(User, Touched), StoreError> {
        self.db
            .write(move |tx| {
                let mut user = users::get_user(tx, id)?;
                let was_disabled = user.disabled;
                change(&mut user);
                users::update_user(tx, &user)?;
                audit::append(tx, &record)?;
                let touched = if was_disabled == user.disabled {
                    Vec::new()
                } else {
                    tunnel::touched_user(tx, id)?
                };
                Ok((user, touched))
            })
            .await
    }

    /// Deletes a user with their devices, addresses and links, and audits.
    /// Answers the peers the user's devices had.
    pub async fn delete_user(&self, id: UserId, record: AuditRecord) -> Result<Touched, StoreError> {
        self.db
            .write(move |tx| {
                let touched = tunnel::touched_user(tx, id)?;
                users::delete_user(tx, id)?;
                audit::append(tx, &record)?;
                Ok(touched)
            })
            .await
    }

    // --- devices ---------------------------------------------------------

    /// A page of a user's devices.
    pub async fn list_devices(
        &self,
        user: UserId,
        after: Option<DeviceId>,
        limit: u32,
    ) -> Result<Listed<Device>, StoreError> {
        self.db.read(move |c| users::list_devices(c, user, after, limit)).await
    }

    /// One device.
    pub async fn device(&self, id: DeviceId) -> Result<Device, StoreError> {
        self.db.read(move |c| users::get_device(c, id)).await
    }

    /// Creates a device, gives it addresses on every server its
    /// organization is attached to, and audits; answers its new peers.
    pub async fn create_device(
        &self,
        new: NewDevice,
        key: HostKey,
        record: AuditRecord,
    ) -> Result<Touched, StoreError> {
        self.db
            .write(move |tx| {
                users::insert_device(tx, &key, &new)?;
                audit::append(tx, &record)?;
                tunnel::touched_device(tx, new.device.id)
            })
            .await
    }

    /// Deletes a device (its addresses are freed) and audits; answers the
    /// peers it had.
    pub async fn delete_device(&self, id: DeviceId, record: AuditRecord) -> Result<Touched, StoreError> {
        self.db
            .write(move |tx| {
                let touched = tunnel::touched_device(tx, id)?;
                users::delete_device(tx, id)?;
                audit::append(tx, &record)?;
                Ok(touched)
            })
            .await
    }

    /// A device's profile for a server.
    pub async fn profile(&self, device: DeviceId, server: ServerId, key: HostKey) -> Result<PeerProfile, StoreError> {
        self.db
            .read(move |c| {
                let device = users::get_device(c, device)?;
                let server = servers::get(c, server)?;
                if users::get_user(c, device.user_id)?.disabled {
                    return Err(StoreError::Conflict {
                        field: "id",
                        message: "the device's user is disabled",
                    });
                }
                profile(c, &key, device, server)
            })
            .await
    }

    // --- key links -------------------------------------------------------

    /// The public address (`Endpoint` host, key link host).
    pub async fn public_address(&self) -> Result<String, StoreError> {
        self.db.read(public_address).await
    }

    /// Stores a key link and audits.
    pub async fn create_link(&self, link: NewLink, record: AuditRecord) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                users::insert_link(tx, &link)?;
                audit::append(tx, &record)
            })
            .await
    }

    /// Counts a use of a key link (audited in the same transaction) and
    /// answers every profile of its user: each device on each server.
    pub async fn open_link(
        &self,
        token_hash: String,
        now: Timestamp,
        key: HostKey,
        record: impl FnOnce(UserId) -> AuditRecord + Send + 'static,
    ) -> Result<(User, Vec<PeerProfile>), StoreError> {
        self.db
            .write(move |tx| {
                let user_id = users::use_link(tx, &token_hash, now)?;
                audit::append(tx, &record(user_id))?;
                let user = users::get_user(tx, user_id)?;
                let pairs: Vec<(String, String)> = tx
                    .prepare_cached(
                        "SELECT p.device_id, p.server_id FROM peers p JOIN devices d ON d.id = p.device_id
                         WHERE d.user_id = ?1 ORDER BY p.device_id, p.server_id",
                    )?
                    .query_map(params![user_id.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                let mut out = Vec::with_capacity(pairs.len());
                for (device, server) in pairs {
                    let device = users::get_device(tx, users::parse("peers.device_id", &device)?)?;
                    let server = servers::get(tx, users::parse("peers.server_id", &server)?)?;
                    out.push(profile(tx, &key, device, server)?);
                }
                Ok((user, out))
            })
            .await
    }

    // --- servers ---------------------------------------------------------

    /// A page of servers.
    pub async fn list_servers(&self, query: ServerQuery) -> Result<Listed<Server>, StoreError> {
        self.db.read(move |c| servers::list(c, query.after, query.limit)).await
    }

    /// One server.
    pub async fn server(&self, id: ServerId) -> Result<Server, StoreError> {
        self.db.read(move |c| servers::get(c, id)).await
    }

    /// Creates a server and audits.
    pub async fn create_server(&self, new: NewServer, record: AuditRecord) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                if users::key_taken(tx, &new.server.public_key)? {
                    return Err(StoreError::Duplicate { field: "public_key" });
                }
                servers::insert(tx, &new)?;
                audit::append(tx, &record)
            })
            .await
    }

    /// Changes a server with `change` (which may refuse) and audits.
    pub async fn update_server(
        &self,
        id: ServerId,
        change: impl FnOnce(&mut Server) -> Result<(), StoreError> + Send + 'static,
        record: AuditRecord,
    ) -> Result<Server, StoreError> {
        self.db
            .write(move |tx| {
                let mut server = servers::get(tx, id)?;
                change(&mut server)?;
                servers::update(tx, &server)?;
                audit::append(tx, &record)?;
                servers::get(tx, id)
            })
            .await
    }

    /// Deletes a server with its peers and audits.
    pub async fn delete_server(&self, id: ServerId, record: AuditRecord) -> Result<(), StoreError> {
        self.db
            .write(move |tx| {
                servers::delete(tx, id)?;
                audit::append(tx, &record)
            })
            .await
    }

    /// Attaches an organization (its devices get addresses) and audits;
    /// answers the server and the org's peers on it.
    pub async fn attach_org(
        &self,
        id: ServerId,
        org: OrgId,
        key: HostKey,
        record: AuditRecord,
    ) -> Result<(Server, Touched), StoreError> {
        self.db
            .write(move |tx| {
                servers::attach(tx, &key, id, org)?;
                audit::append(tx, &record)?;
                Ok((servers::get(tx, id)?, tunnel::touched_org(tx, org, Some(id))?))
            })
            .await
    }

    /// Detaches an organization (its addresses are freed) and audits;
    /// answers the server and the peers the org had on it.
    pub async fn detach_org(
        &self,
        id: ServerId,
        org: OrgId,
        record: AuditRecord,
    ) -> Result<(Server, Touched), StoreError> {
        self.db
            .write(move |tx| {
                let touched = tunnel::touched_org(tx, org, Some(id))?;
                servers::detach(tx, id, org)?;
                audit::append(tx, &record)?;
                Ok((servers::get(tx, id)?, touched))
            })
            .await
    }
}
