//! Setting and removing signals (`drain`/`undrain`, `abort`/`unabort`, `exit`/`unexit`) at the
//! global, workflow or instance level, with the original's messages. The scheduler's
//! ABORT_RUNNING uses [`set_signal`] too.

use super::{Done, Ops, OpsError};
use crate::master::MasterClient;
use crate::token::name::{Level, signal_token};
use crate::token::{MasterError, ModifyRequest, Token};
use crate::workflow::signal::{Action, Attributes, Signal, Signals};

/// Sets `action` at `level`. An ABORT or EXIT with other attributes replaces the one set; any
/// other signal already set is left as it is.
pub async fn set_signal(
    client: &dyn MasterClient,
    level: &Level,
    action: Action,
    attributes: Attributes,
) -> Result<Done, MasterError> {
    let name = signal_token(level, action);
    let existing = client.get(&name).await?;
    let signal = Signal::new(action, attributes);
    if let Some(old) = existing.as_ref().and_then(Signal::from_token)
        && (old.attributes == signal.attributes
            || action != Action::EXIT && action != Action::ABORT)
    {
        return Ok(Done::say(format!(
            "{} has been already set.  Not changing anything this time\n",
            action.as_str()
        )));
    }
    let token = Token {
        version: existing.as_ref().and_then(|t| t.version),
        ..signal.token(level)
    };
    client.modify(ModifyRequest::update(vec![token])).await?;
    Ok(Done::say(format!(
        "set {}.  Its token is {name}\n",
        action.as_str()
    )))
}

/// Removes `action` at `level`, saying so when it is still set at a higher level.
pub async fn remove_signal(
    client: &dyn MasterClient,
    level: &Level,
    action: Action,
) -> Result<Done, MasterError> {
    let name = signal_token(level, action);
    if let Some(t) = client.get(&name).await? {
        client.modify(ModifyRequest::delete(vec![t])).await?;
        return Ok(Done::say(format!(
            "removed {} from {name}\n",
            action.as_str()
        )));
    }
    let visible = Signals::read(client, level).await?;
    let mut msg = format!(
        "{} has been already removed.  Not changing anything this time\n",
        action.as_str()
    );
    if let Some(t) = visible.token(action) {
        // The original said nothing here; a signal set higher up still applies.
        msg.push_str(&format!(
            "note: {} is still set at a higher level, by {}\n",
            action.as_str(),
            t.name
        ));
    }
    Ok(Done::say(msg))
}

impl Ops<'_> {
    /// Sets `action` at `level`, refusing an instance that has finished or is archived.
    async fn set(&self, level: &Level, action: Action, a: Attributes) -> Result<Done, OpsError> {
        if let Level::Instance(w, i) = level {
            let what = action.as_str().to_lowercase();
            self.refuse_history(&what, w, i, true).await?;
        }
        Ok(set_signal(self.client(), level, action, a).await?)
    }

    /// Removes `action` at `level`, refusing an archived instance.
    async fn remove(&self, level: &Level, action: Action) -> Result<Done, OpsError> {
        if let Level::Instance(w, i) = level {
            let what = format!("un{}", action.as_str().to_lowercase());
            self.refuse_history(&what, w, i, false).await?;
        }
        Ok(remove_signal(self.client(), level, action).await?)
    }

    pub async fn drain(&self, level: &Level) -> Result<Done, OpsError> {
        self.set(level, Action::DRAIN, Attributes::default()).await
    }

    pub async fn undrain(&self, level: &Level) -> Result<Done, OpsError> {
        self.remove(level, Action::DRAIN).await
    }

    /// `abort`: running jobs are killed, nothing more starts, the instances end as ABORTED.
    pub async fn abort(&self, level: &Level) -> Result<Done, OpsError> {
        let attributes = Attributes {
            timestamp: Some(crate::clock::now_f64()),
            ..Attributes::default()
        };
        self.set(level, Action::ABORT, attributes).await
    }

    pub async fn unabort(&self, level: &Level) -> Result<Done, OpsError> {
        self.remove(level, Action::ABORT).await
    }

    /// `exit`: workers of a generation older than this configuration's exit after their job.
    pub async fn exit(&self, level: &Level) -> Result<Done, OpsError> {
        let attributes = Attributes {
            generation: Some(self.settings.generation),
            ..Attributes::default()
        };
        self.set(level, Action::EXIT, attributes).await
    }

    pub async fn unexit(&self, level: &Level) -> Result<Done, OpsError> {
        self.remove(level, Action::EXIT).await
    }
}
