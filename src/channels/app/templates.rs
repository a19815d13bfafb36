//! Customer groups' welcomes as WeCom templates (入群欢迎语素材): each `[[wecom_template]]` of
//! `welcome.toml` is kept in WeCom — added when new, edited when its text changed, deleted when
//! its entry went — at start and whenever the scripts are reloaded. The template ids are stored
//! per app (in `meta`), so an edit changes the template the owners already attached instead of
//! making another. What changed is logged; a call WeCom refuses leaves the rest synced and is
//! tried again a minute later.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::CustomerGroups;
use crate::engine::welcome::WecomWelcome;
use crate::wire::wecom::app::ApiError;

/// How often the scripts are looked at for a reload.
const LOOK_EVERY: Duration = Duration::from_secs(2);

/// After a sync that did not finish, the next try waits this long.
const RETRY_AFTER: Duration = Duration::from_secs(60);

/// What is stored per app: each template by the operator's name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub templates: BTreeMap<String, StoredTemplate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTemplate {
    pub id: String,
    pub text: String,
}

fn meta_key(app: &CustomerGroups) -> String {
    format!("wecom_welcome_templates:{}", app.bot)
}

/// Keeps the templates in step with the scripts until the service stops.
pub async fn run(app: Arc<CustomerGroups>) {
    let mut synced: Option<Arc<crate::engine::Scripts>> = None;
    loop {
        let current = app.services.scripts.current();
        let mut wait = LOOK_EVERY;
        if synced.as_ref().is_none_or(|s| !Arc::ptr_eq(s, &current)) {
            if sync(&app, &current.welcome.wecom_templates).await {
                synced = Some(current);
            } else {
                wait = RETRY_AFTER;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = app.stop.cancelled() => return,
        }
    }
}

/// The stored template ids of `app`.
pub async fn stored(app: &CustomerGroups) -> Stored {
    let store = app.services.store.clone();
    let key = meta_key(app);
    let read = tokio::task::spawn_blocking(move || store.meta_with_prefix(&key)).await;
    match read {
        Ok(Ok(found)) => found
            .into_iter()
            .find(|(k, _)| *k == meta_key(app))
            .and_then(|(_, v)| serde_json::from_slice(&v).ok())
            .unwrap_or_default(),
        _ => Stored::default(),
    }
}

async fn save(app: &CustomerGroups, stored: &Stored) -> bool {
    let store = app.services.store.clone();
    let key = meta_key(app);
    let Ok(bytes) = serde_json::to_vec(stored) else {
        return false;
    };
    let written =
        tokio::task::spawn_blocking(move || store.write(|tx| tx.put_meta(&key, &bytes))).await;
    match written {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            warn!(bot = %app.bot, error = %e, "welcome template ids not stored");
            false
        }
        Err(e) => {
            warn!(error = %e, "welcome template task failed");
            false
        }
    }
}

/// Brings WeCom's templates in line with `desired`; returns whether everything is.
pub async fn sync(app: &CustomerGroups, desired: &[WecomWelcome]) -> bool {
    let mut stored = stored(app).await;
    let (mut added, mut updated, mut deleted, mut unchanged) = (vec![], vec![], vec![], 0);
    let mut complete = true;
    let client = &app.client;
    for want in desired {
        if app.stop.is_cancelled() {
            return false;
        }
        let result = match stored.templates.get(&want.name) {
            Some(have) if have.text == want.text => {
                unchanged += 1;
                continue;
            }
            Some(have) => match app
                .api(client.edit_welcome_template(&have.id, &want.text))
                .await
            {
                Ok(()) => Ok((have.id.clone(), false)),
                // Refused: most likely deleted in the admin console meanwhile — made again.
                Err(ApiError::Api { .. }) => app
                    .api(client.add_welcome_template(&want.text))
                    .await
                    .map(|id| (id, true)),
                Err(e) => Err(e),
            },
            None => app
                .api(client.add_welcome_template(&want.text))
                .await
                .map(|id| (id, true)),
        };
        let (id, new) = match result {
            Ok(done) => done,
            Err(e) => {
                warn!(bot = %app.bot, template = %want.name, error = %e,
                    "welcome template not synced with WeCom");
                complete = false;
                continue;
            }
        };
        if new {
            added.push(want.name.clone());
        } else {
            updated.push(want.name.clone());
        }
        stored.templates.insert(
            want.name.clone(),
            StoredTemplate {
                id,
                text: want.text.clone(),
            },
        );
        complete &= save(app, &stored).await;
    }
    let gone: Vec<String> = stored
        .templates
        .keys()
        .filter(|name| !desired.iter().any(|d| &d.name == *name))
        .cloned()
        .collect();
    for name in gone {
        let id = stored.templates[&name].id.clone();
        match app.api(client.delete_welcome_template(&id)).await {
            // Refused with an errcode: most likely deleted in the admin console already.
            Ok(()) | Err(ApiError::Api { .. }) => {
                stored.templates.remove(&name);
                deleted.push(name);
                complete &= save(app, &stored).await;
            }
            Err(e) => {
                warn!(bot = %app.bot, template = %name, error = %e, "welcome template not deleted");
                complete = false;
            }
        }
    }
    if !added.is_empty() || !updated.is_empty() || !deleted.is_empty() {
        info!(bot = %app.bot, ?added, ?updated, ?deleted, unchanged,
            "customer groups' welcome templates synced with WeCom");
    } else {
        info!(bot = %app.bot, unchanged, "customer groups' welcome templates unchanged");
    }
    complete
}
