//! Every request checked before it reaches the master's state: names, versions, fields,
//! counts and sizes, each refusal naming what is wrong.

use super::*;

/// Checks a name that a request wants to write: valid and not reserved.
pub(super) fn validate_writable_name(name: &str) -> Result<(), MasterError> {
    validate_name(name)?;
    if name.starts_with(RESERVED_PREFIX) {
        return Err(MasterError::input(format!(
            "token name {name} is reserved: names starting with {RESERVED_PREFIX} belong to the master"
        )));
    }
    Ok(())
}

pub(super) fn validate_version(token: &Token) -> Result<(), MasterError> {
    match token.version {
        Some(v) if v <= 0 => Err(MasterError::input(format!(
            "token {} has version {v}; versions are positive",
            token.name
        ))),
        _ => Ok(()),
    }
}

pub(super) fn validate_fields(token: &Token) -> Result<(), MasterError> {
    validate_writable_name(&token.name)?;
    validate_version(token)?;
    if let Some(owner) = &token.owner
        && owner.len() > MAX_OWNER_BYTES
    {
        return Err(MasterError::input(format!(
            "token {} has an owner of {} bytes; the limit is {MAX_OWNER_BYTES}",
            token.name,
            owner.len()
        )));
    }
    if let Some(t) = token.expiration_time
        && t < 0
    {
        return Err(MasterError::input(format!(
            "token {} has expiration_time {t}; it is seconds since the epoch and cannot be negative",
            token.name
        )));
    }
    // No database stores a NUL in text (PostgreSQL refuses it), so no backend takes one.
    if token.owner.as_deref().is_some_and(|o| o.contains('\0'))
        || token.data.as_deref().is_some_and(|d| d.contains('\0'))
    {
        return Err(MasterError::input(format!(
            "token {} holds a NUL character (\\u0000) in its owner or data; token text cannot \
             carry one (escape it, or encode binary data as base64)",
            token.name
        )));
    }
    if !token.priority.is_finite() {
        return Err(MasterError::input(format!(
            "token {} has a priority that is not a finite number",
            token.name
        )));
    }
    Ok(())
}

pub(super) fn require_version(token: &Token) -> Result<(), MasterError> {
    if token.version.is_none() {
        return Err(MasterError::input(format!(
            "token {} does not have version set",
            token.name
        )));
    }
    Ok(())
}

/// Rejects a name that appears twice across the given lists.
pub(super) fn reject_duplicates<'a>(
    names: impl Iterator<Item = &'a str>,
) -> Result<(), MasterError> {
    let mut seen = HashSet::new();
    for name in names {
        if !seen.insert(name) {
            return Err(MasterError::input(format!(
                "token {name} appears more than once in one request"
            )));
        }
    }
    Ok(())
}

impl ArchiveRequest {
    pub fn validate(&self) -> Result<(), MasterError> {
        check_count("archive", self.tokens.len())?;
        for t in &self.tokens {
            validate_writable_name(&t.name)?;
            validate_version(t)?;
            require_version(t)?;
        }
        reject_duplicates(self.tokens.iter().map(|t| t.name.as_str()))
    }
}

impl QueryRequest {
    pub fn validate(&self) -> Result<(), MasterError> {
        if let Some(w) = self.wait_ms
            && w > MAX_WAIT_MS
        {
            return Err(MasterError::input(format!(
                "wait_ms {w} is longer than the limit of {MAX_WAIT_MS}"
            )));
        }
        if self.wait_ms.is_some() != self.after_version.is_some() {
            return Err(MasterError::input(
                "a watch needs both wait_ms and after_version",
            ));
        }
        if self.queries.len() > MAX_QUERIES_PER_REQUEST {
            return Err(MasterError::input(format!(
                "query carries {} queries; the limit is {MAX_QUERIES_PER_REQUEST} per request",
                self.queries.len()
            )));
        }
        Ok(())
    }
}

impl AuditRequest {
    pub fn validate(&self) -> Result<(), MasterError> {
        let long = |what: &str, len: usize, max: usize| {
            Err(MasterError::input(format!(
                "audit {what} is {len} bytes long; the limit is {max}"
            )))
        };
        for (what, v) in [("actor", &self.actor), ("command", &self.command)] {
            if v.is_empty() {
                return Err(MasterError::input(format!("audit {what} is empty")));
            }
            if v.len() > MAX_AUDIT_FIELD {
                return long(what, v.len(), MAX_AUDIT_FIELD);
            }
            if let Some(c) = v.chars().find(|c| !shown_as_is(*c)) {
                return Err(MasterError::input(format!(
                    "audit {what} holds the character U+{:04X}, which would not show as written; use printable text",
                    c as u32
                )));
            }
        }
        for (what, v) in [("workflow", &self.workflow), ("instance", &self.instance)] {
            if let Some(v) = v
                && !(name::is_word(v) && v.len() <= name::MAX_WORD_BYTES)
            {
                return Err(MasterError::input(format!(
                    "audit {what} {v:?} is not a name"
                )));
            }
        }
        if self.jobs.len() > 1000 || self.jobs.iter().any(|j| !name::is_word(j)) {
            return Err(MasterError::input(
                "audit jobs must be at most 1000 job names",
            ));
        }
        if self.result.len() > MAX_AUDIT_RESULT {
            return long("result", self.result.len(), MAX_AUDIT_RESULT);
        }
        if let Some(c) = self
            .result
            .chars()
            .find(|c| !matches!(c, '\n' | '\t') && !shown_as_is(*c))
        {
            return Err(MasterError::input(format!(
                "audit result holds the character U+{:04X}, which would not show as written",
                c as u32
            )));
        }
        Ok(())
    }
}

pub(super) fn check_count(what: &str, n: usize) -> Result<(), MasterError> {
    if n > MAX_TOKENS_PER_REQUEST {
        return Err(MasterError::input(format!(
            "{what} carries {n} tokens; the limit is {MAX_TOKENS_PER_REQUEST} per request, so send them in smaller batches"
        )));
    }
    Ok(())
}

impl QueryAndOwnRequest {
    pub fn validate(&self) -> Result<(), MasterError> {
        if self.owner.is_empty() {
            return Err(MasterError::input("query_and_own needs a non-empty owner"));
        }
        if self.owner.len() > MAX_OWNER_BYTES {
            return Err(MasterError::input(format!(
                "owner is {} bytes long; the limit is {MAX_OWNER_BYTES}",
                self.owner.len()
            )));
        }
        match self.lease_sec {
            Some(l) if l == 0 || l > MAX_LEASE_SEC => {
                return Err(MasterError::input(format!(
                    "lease_sec {l} must be between 1 and {MAX_LEASE_SEC}"
                )));
            }
            Some(_) => {}
            None if self.expiration_time <= 0 => {
                return Err(MasterError::input(format!(
                    "expiration_time {} is not in the future; a claim needs a lease end in seconds since the epoch, or lease_sec",
                    self.expiration_time
                )));
            }
            None => {}
        }
        if let Some(w) = self.wait_ms
            && w > MAX_WAIT_MS
        {
            return Err(MasterError::input(format!(
                "wait_ms {w} is longer than the limit of {MAX_WAIT_MS}"
            )));
        }
        if let Some(pools) = &self.pools {
            if pools.is_empty() || pools.len() > MAX_POOLS {
                return Err(MasterError::input(format!(
                    "pools names {} pools; name between 1 and {MAX_POOLS}, or leave it out to claim from every pool",
                    pools.len()
                )));
            }
            if let Some(bad) = pools.iter().find(|p| !is_pool_name(p)) {
                return Err(MasterError::input(format!(
                    "pool {bad:?} is not a pool name: letters, digits, _ and - only, at most 64"
                )));
            }
        }
        Ok(())
    }
}
