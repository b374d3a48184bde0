//! AssignUserRoles and RevokeUserRoles of many users applied together: the
//! re-check, the change and the outcomes of the whole batch take a fixed
//! number of statements, however many operations it holds. Each command
//! still succeeds or fails alone, with the outcome or error it would have
//! had applied by itself ([`Service::apply_command`]).

use super::{
    Service,
    commands::{Command, Outcome},
    model::{Memo, RoleScope, UserRoles},
};
use crate::{
    error::Result,
    store::assignments::{self as db, Key},
};
use sea_orm::ConnectionTrait;

/// One user's role change of a batch.
#[derive(Debug, Clone, Copy)]
pub struct UserRolesChange<'a> {
    command: &'a Command,
    organization_id: &'a str,
    user_id: &'a str,
    role_ids: &'a [String],
    assign: bool,
}

impl<'a> UserRolesChange<'a> {
    /// The change `command` makes, if it is AssignUserRoles or RevokeUserRoles.
    pub fn of(command: &'a Command) -> Option<Self> {
        let (organization_id, user_id, role_ids, assign) = match command {
            Command::AssignUserRoles {
                organization_id,
                user_id,
                role_ids,
            } => (organization_id, user_id, role_ids, true),
            Command::RevokeUserRoles {
                organization_id,
                user_id,
                role_ids,
            } => (organization_id, user_id, role_ids, false),
            _ => return None,
        };
        Some(Self {
            command,
            organization_id,
            user_id,
            role_ids,
            assign,
        })
    }

    /// The organization.
    pub fn organization_id(&self) -> &'a str {
        self.organization_id
    }

    fn user(&self) -> (&'a str, &'a str) {
        (self.organization_id, self.user_id)
    }

    fn assignments(&self) -> impl Iterator<Item = (&'a str, &'a str, &'a str)> + 'a {
        let (o, u) = self.user();
        self.role_ids.iter().map(move |r| (o, u, r.as_str()))
    }
}

fn key((o, id): (&str, &str)) -> Key {
    (o.to_owned(), id.to_owned())
}

impl Service {
    /// Re-checks and applies `changes` on `conn`, each on a different user.
    /// Returns, per change, its outcome or the error that failed it (a
    /// failed change has written nothing); an error of the database fails
    /// the call.
    pub async fn apply_user_role_changes(
        &self,
        conn: &impl ConnectionTrait,
        changes: &[UserRolesChange<'_>],
        now: i64,
    ) -> Result<Vec<Result<Outcome>>> {
        let users: Vec<_> = changes.iter().map(UserRolesChange::user).collect();
        let roles: Vec<_> = changes
            .iter()
            .flat_map(|c| c.assignments().map(|(o, _, r)| (o, r)))
            .collect();
        let (existing, scopes) = db::users_and_role_scopes(conn, &users, &roles).await?;
        let mut verdicts = Vec::with_capacity(changes.len());
        for change in changes {
            let fits = change.command.validate().is_ok()
                && existing.contains(&key(change.user()))
                && change.role_ids.iter().all(|r| {
                    scopes.get(&key((change.organization_id, r))) == Some(&RoleScope::Organization)
                });
            verdicts.push(if fits {
                Ok(())
            } else {
                // The full re-check names exactly what no longer fits.
                match self.recheck_command(conn, change.command).await {
                    Ok(_) => Ok(()),
                    Err(err) if err.is_fault() => return Err(err),
                    Err(err) => Err(err),
                }
            });
        }
        let applying = || {
            changes
                .iter()
                .zip(&verdicts)
                .filter(|(_, verdict)| verdict.is_ok())
                .map(|(change, _)| change)
        };
        let (mut grants, mut revokes) = (Vec::new(), Vec::new());
        for change in applying() {
            let list = if change.assign {
                &mut grants
            } else {
                &mut revokes
            };
            list.extend(change.assignments());
        }
        let changed: Vec<_> = applying().map(UserRolesChange::user).collect();
        let mut held = db::change_and_read(conn, &grants, &revokes, &changed, now).await?;
        Ok(changes
            .iter()
            .zip(verdicts)
            .map(|(change, verdict)| {
                verdict.map(|()| {
                    Outcome::UserRoles(UserRoles {
                        organization_id: change.organization_id.to_owned(),
                        user_id: change.user_id.to_owned(),
                        roles: held
                            .remove(&key(change.user()))
                            .unwrap_or_default()
                            .into_iter()
                            .map(std::sync::Arc::new)
                            .collect(),
                        encoding: Memo::default(),
                    })
                })
            })
            .collect())
    }
}
