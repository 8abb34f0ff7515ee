//! Who gets a job class that more than one plugin file claims.
//!
//! While the runner runs, a file claiming a class another plugin serves is
//! refused. At start-up every file is new, so a conflict is never settled
//! by file name (a `0_collide.wasm` would otherwise beat `order_created.wasm`
//! and receive real orders): the class goes to the plugin the policy pins it
//! to (`[classes] OrderCreateJob = "order_created"`), else to the plugin
//! that served it last (remembered in Redis, `jobrunner:class-owners`), and
//! with neither, every claimant is refused with an error naming them all.

use crate::plugin::PluginMeta;
use crate::queue::Queue;
use anyhow::{Result, bail};
use redis::AsyncCommands;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// Redis hash: job class -> the name of the plugin that served it last.
pub const CLASS_OWNERS: &str = "jobrunner:class-owners";

/// Pins from the policy and the owners remembered in Redis.
pub struct Owners {
    /// Class -> the plugin name the policy gives it to.
    pins: HashMap<String, String>,
    /// Where owners are remembered; `None` remembers nothing.
    redis: Option<Queue>,
}

impl Owners {
    pub fn new(pins: HashMap<String, String>, redis: Option<Queue>) -> Owners {
        Owners { pins, redis }
    }

    /// Refuses `plugin` if the policy pins one of its classes to another plugin.
    pub fn check_pins(&self, plugin: &PluginMeta) -> Result<()> {
        for class in &plugin.classes {
            if let Some(owner) = self.pins.get(class).filter(|owner| **owner != plugin.name) {
                bail!("class {class} is pinned to plugin {owner} by the policy ([classes])");
            }
        }
        Ok(())
    }

    /// Whether `plugin` may serve at start-up before every file has loaded:
    /// each of its classes is pinned to it or was last served by it.
    pub async fn serves_early(&self, plugin: &PluginMeta) -> bool {
        let classes: Vec<&String> = plugin.classes.iter().collect();
        let remembered = self.remembered(&classes).await;
        plugin.classes.iter().all(|class| match self.pins.get(class) {
            Some(pin) => *pin == plugin.name,
            None => remembered.get(class) == Some(&plugin.name),
        })
    }

    /// Remembers `plugin` as the owner of its classes. Best effort: without
    /// Redis, a later start-up conflict refuses every claimant instead.
    pub async fn remember(&self, plugin: &PluginMeta) {
        let Some(redis) = &self.redis else { return };
        let fields: Vec<(&str, &str)> =
            plugin.classes.iter().map(|c| (c.as_str(), plugin.name.as_str())).collect();
        if let Err(err) = redis.connection().hset_multiple::<_, _, _, ()>(CLASS_OWNERS, &fields).await {
            tracing::warn!(plugin = %plugin.name, error = %err, "could not remember the plugin's classes");
        }
    }

    /// The remembered owners of `classes`.
    async fn remembered(&self, classes: &[&String]) -> HashMap<String, String> {
        let Some(redis) = self.redis.as_ref().filter(|_| !classes.is_empty()) else { return HashMap::new() };
        let owners: redis::RedisResult<Vec<Option<String>>> =
            redis::cmd("HMGET").arg(CLASS_OWNERS).arg(classes).query_async(&mut redis.connection()).await;
        match owners {
            Ok(owners) => classes.iter().zip(owners).filter_map(|(c, o)| Some(((*c).clone(), o?))).collect(),
            Err(err) => {
                tracing::warn!(error = %err, "could not read the remembered class owners");
                HashMap::new()
            }
        }
    }

    /// Settles the classes claimed by more than one of `claims` (file and
    /// what it declared): returns the files that lose, with why.
    pub async fn settle(&self, claims: &[(PathBuf, PluginMeta)]) -> BTreeMap<PathBuf, String> {
        let mut by_class: BTreeMap<&String, Vec<&(PathBuf, PluginMeta)>> = BTreeMap::new();
        for claim in claims {
            for class in &claim.1.classes {
                by_class.entry(class).or_default().push(claim);
            }
        }
        by_class.retain(|_, claimants| claimants.len() > 1);
        let contested: Vec<&String> = by_class.keys().copied().collect();
        let remembered = self.remembered(&contested).await;
        let mut losers = BTreeMap::new();
        for (class, claimants) in by_class {
            let (owner, why) = match (self.pins.get(class), remembered.get(class)) {
                (Some(pin), _) => (Some(pin), "the policy pins it to"),
                (None, Some(last)) => (Some(last), "it was last served by"),
                (None, None) => (None, ""),
            };
            let names: Vec<String> =
                claimants.iter().map(|(path, m)| format!("{} ({})", m.name, path.display())).collect();
            let mut kept = false;
            for (path, meta) in claimants {
                // Two files of the owning plugin: the first by name serves.
                if !kept && owner.is_some_and(|owner| *owner == meta.name) {
                    kept = true;
                    continue;
                }
                let reason = match owner {
                    Some(owner) => {
                        format!("class {class} is claimed by {}; {why} plugin {owner}", names.join(" and "))
                    }
                    None => format!(
                        "class {class} is claimed by {} and no plugin served it before: refusing them all \
                         (pin it in the policy's [classes] to choose)",
                        names.join(" and ")
                    ),
                };
                losers.entry(path.clone()).or_insert(reason);
            }
        }
        losers
    }
}
