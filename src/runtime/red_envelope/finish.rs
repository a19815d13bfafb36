//! How a test ends: cancelled (by an operator, or with its group's release), or finished when
//! its window closes — results stored, the verdict posted to the group and sent to the
//! operators' alert target — and the posts and answers that say so.

use super::*;
use crate::runtime::alerts::private_message;

impl Envelopes {
    /// Cancels the test running in `which` (its id, or its group): stored as cancelled with
    /// `by`, no results; with `announce`, `[messages.cancelled]` is posted to the group (when it
    /// is still adopted). Claims after this are answered as cancelled.
    pub async fn cancel(
        &self,
        which: &TestRef,
        by: &str,
        announce: bool,
    ) -> Result<TestRecord, CancelError> {
        let slot = {
            let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            match which {
                TestRef::Chat(chat) => running.get(chat),
                TestRef::Id(id) => running.values().find(|s| s.id == *id),
            }
            .map(|slot| Arc::clone(&slot.test))
        };
        let Some(slot) = slot else {
            return Err(self.not_running(which).await);
        };
        let mut run = slot.lock().await;
        if run.done {
            drop(run);
            return Err(self.not_running(which).await);
        }
        let now = self.now();
        let chat = run.test.chat_id.clone();
        let store = self.store.clone();
        let (key, test_id) = (chat.clone(), run.test.id.clone());
        let facts = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            Ok((store.envelope_posted_at(&test_id)?, store.group(&key)?))
        })
        .await
        .map_err(|e| CancelError::Store(StoreError::Db(e.to_string())))?;
        let (posted_at, group) = facts.map_err(CancelError::Store)?;
        let mut test = run.test.clone();
        test.state = TestState::Cancelled;
        test.finished_at = Some(now);
        test.posted_at = posted_at;
        test.cancelled_by = Some(by.to_owned());
        let scripts = self.scripts.current();
        let announcement = match (&group, scripts.red_envelope.messages.as_ref()) {
            (Some(group), Some(messages)) if announce && group.status == GroupStatus::Adopted => {
                self.cancel_post(&scripts, messages, group, &test, now)
            }
            _ => None,
        };
        let store = self.store.clone();
        let record = test.clone();
        let written = tokio::task::spawn_blocking(move || {
            store.write(|tx| {
                tx.put_envelope_test(&record)?;
                match announcement {
                    Some(send) => tx.enqueue(send, now),
                    None => Ok(None),
                }
            })
        })
        .await
        .map_err(|e| CancelError::Store(StoreError::Db(e.to_string())))?;
        if let Some(entry) = written.map_err(CancelError::Store)? {
            (self.dispatch)(entry);
        }
        info!(test = %test.id, chat = %chat, by, claims = run.claims.len(), "red-envelope test cancelled");
        self.close(&mut run, &test);
        Ok(test)
    }

    /// Moves `run`, now stored as `test` (finished or cancelled), from the running tests to
    /// the closed ones that answer late claims.
    fn close(&self, run: &mut Running, test: &TestRecord) {
        run.done = true;
        run.test = test.clone();
        self.running_remove(&test.chat_id);
        let closed = closed_of(test, &run.claims, phrase_key(&test.claim_phrase));
        self.closed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(test.chat_id.clone(), closed);
    }

    /// Cancels the test running in `chat`, which the bot no longer serves: nobody can claim,
    /// and a restart does not resume it. Nothing is posted (the group is gone).
    pub async fn group_released(&self, chat: &ChatId) {
        match self
            .cancel(&TestRef::Chat(chat.clone()), RELEASED_BY, false)
            .await
        {
            Ok(_) | Err(CancelError::NothingRunning) => {}
            Err(e) => {
                error!(chat = %chat, error = %e, "the released group's red-envelope test was not cancelled")
            }
        }
    }

    /// Why `which` could not be cancelled: no such test, or it is not running.
    async fn not_running(&self, which: &TestRef) -> CancelError {
        let TestRef::Id(id) = which else {
            return CancelError::NothingRunning;
        };
        let store = self.store.clone();
        let id = id.clone();
        match tokio::task::spawn_blocking(move || store.envelope_test(&id)).await {
            Ok(Ok(Some(test))) => CancelError::NotRunning(test.state),
            Ok(Ok(None)) => CancelError::UnknownTest,
            Ok(Err(e)) => CancelError::Store(e),
            Err(e) => CancelError::Store(StoreError::Db(e.to_string())),
        }
    }

    /// `[messages.cancelled]`, to the group.
    fn cancel_post(
        &self,
        scripts: &Scripts,
        messages: &EnvelopeMessages,
        group: &crate::store::GroupRecord,
        test: &TestRecord,
        now: DateTime<Utc>,
    ) -> Option<NewSend> {
        let chat = &group.chat_id;
        let to = crate::outbox::group_destination(group, &self.webhook_hosts)
            .map_err(|why| warn!(test = %test.id, chat = %chat, "cancellation not posted: {why}"))
            .ok()?;
        let envelope = texts::envelope(test, group.account.is_none());
        let message = self
            .render_post(scripts, &messages.cancelled, chat, context! { envelope })
            .map_err(|e| error!(test = %test.id, error = %e, "the cancellation did not render"))
            .ok()?;
        Some(NewSend {
            key: format!("envelope:{}:cancelled", test.id),
            chat: Some(chat.clone()),
            bot: Some(group.bot.clone()),
            to,
            message,
            purpose: "red_envelope".into(),
            run: None,
            not_before: Some(now),
            skip: None,
        })
    }

    /// Finishes every test whose window has ended; returns how many could not be finished.
    pub async fn finish_due(&self) -> usize {
        let now = self.now();
        let due: Vec<_> = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|s| s.ends_at <= now)
            .map(|s| Arc::clone(&s.test))
            .collect();
        let mut failed = 0;
        for test in due {
            let mut run = test.lock().await;
            if !run.done && !self.finish_locked(&mut run, now, now).await {
                failed += 1;
            }
        }
        let keep_from = now - chrono::Duration::from_std(LATE_ANSWERS_FOR).unwrap_or_default();
        self.closed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, c| c.finished_at >= keep_from);
        failed
    }

    /// Finishes `run`: results, the group's announcement and the admins' report, stored and
    /// queued together. False when the store refused (the test stays running; tried again).
    /// `announce_at`: when the group's announcement and the admins' report may go out.
    pub(super) async fn finish_locked(
        &self,
        run: &mut Running,
        now: DateTime<Utc>,
        announce_at: DateTime<Utc>,
    ) -> bool {
        let chat = run.test.chat_id.clone();
        let store = self.store.clone();
        let key = chat.clone();
        let test_id = run.test.id.clone();
        let facts = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            let posted_at = store.envelope_posted_at(&test_id)?;
            let group = store.group(&key)?;
            let roster = match &group {
                Some(group) => store.members_listed(group)?,
                None => 0,
            };
            Ok((group, roster, posted_at))
        })
        .await;
        let (group, roster, posted_at) = match facts {
            Ok(Ok(facts)) => facts,
            Ok(Err(e)) => {
                error!(test = %run.test.id, error = %e, "test not finished: the store is unreadable");
                return false;
            }
            Err(e) => {
                error!(test = %run.test.id, error = %e, "test not finished: task failed");
                return false;
            }
        };
        let scripts = self.scripts.current();
        // Only a bot account lists the members; the robot knows those who spoke to it.
        let members = (roster > 0).then_some(roster);
        let claims: Vec<Claim> = run.claims.iter().map(engine_claim).collect();
        let silent = run.claims.iter().filter(|c| !c.spoke_before).count();
        // Measured from when members could see the envelope: a post held back (an account
        // offline, a rate limit) must not make a group look slow. A delivery is recorded a moment
        // after it happens, so a claim may come before it: then it was seen by then.
        let first_claim = run.claims.iter().map(|c| c.at).min();
        let shown = posted_at
            .map(|p| first_claim.map_or(p, |c| p.min(c)))
            .unwrap_or(run.test.started_at)
            .clamp(run.test.started_at, run.test.ends_at);
        let results = rules::results(
            &claims,
            run.test.shares,
            shown,
            (run.test.ends_at - shown).to_std().unwrap_or_default(),
            members,
            silent,
            &scripts.red_envelope.verdict,
        );
        if posted_at.is_none() {
            warn!(test = %run.test.id, chat = %chat, "the envelope never reached the group: its results say nothing about it");
        }
        let mut test = run.test.clone();
        test.posted_at = posted_at;
        test.state = TestState::Finished;
        test.finished_at = Some(now);
        test.results = Some(results.clone());
        let sends = match (&group, scripts.red_envelope.messages.as_ref()) {
            (Some(group), Some(messages)) if group.status == GroupStatus::Adopted => self
                .finish_posts(
                    &scripts,
                    messages,
                    group,
                    &test,
                    &run.claims,
                    members,
                    announce_at,
                ),
            _ => {
                warn!(test = %test.id, chat = %chat, "the group is no longer adopted: results stored, nothing posted");
                Vec::new()
            }
        };
        let store = self.store.clone();
        let record = test.clone();
        let written = tokio::task::spawn_blocking(move || {
            store.write(|tx| {
                tx.put_envelope_test(&record)?;
                let mut entries = Vec::new();
                for send in sends {
                    entries.extend(tx.enqueue(send, now)?);
                }
                Ok(entries)
            })
        })
        .await;
        let entries = match written {
            Ok(Ok(entries)) => entries,
            Ok(Err(e)) => {
                error!(test = %test.id, error = %e, "test not finished: the store refused; trying again");
                return false;
            }
            Err(e) => {
                error!(test = %test.id, error = %e, "test not finished: task failed; trying again");
                return false;
            }
        };
        for entry in entries {
            (self.dispatch)(entry);
        }
        info!(test = %test.id, chat = %chat, claims = results.claims, claimed_fen = results.claimed_fen,
            verdict = ?results.verdict, "red-envelope test finished");
        self.close(run, &test);
        true
    }

    /// The announcement to the group and the report to the operators' alert target.
    #[allow(clippy::too_many_arguments)]
    fn finish_posts(
        &self,
        scripts: &Scripts,
        messages: &EnvelopeMessages,
        group: &crate::store::GroupRecord,
        test: &TestRecord,
        claims: &[ClaimRecord],
        members: Option<u64>,
        announce_at: DateTime<Utc>,
    ) -> Vec<NewSend> {
        let chat = &group.chat_id;
        let to = match crate::outbox::group_destination(group, &self.webhook_hosts) {
            Ok(to) => to,
            Err(why) => {
                warn!(test = %test.id, chat = %chat, "results not posted: {why}");
                return Vec::new();
            }
        };
        let Some(results) = &test.results else {
            return Vec::new();
        };
        let vars = context! {
            envelope => texts::envelope(test, group.account.is_none()),
            results => texts::results(results, claims, test, members),
        };
        let mut posts = Vec::new();
        match self.render_post(scripts, &messages.finished, chat, vars.clone()) {
            Ok(message) => posts.push((message, "red_envelope")),
            Err(e) => error!(test = %test.id, error = %e, "the announcement did not render"),
        }
        // The verdict on a group is for the operators and its owner and admins, not its members:
        // the report goes to the alert target and, through a bot account, privately to the owner
        // and admins — never into the group.
        let mut reports = Vec::new();
        match self.render_post(scripts, &messages.report, chat, vars) {
            Ok(OutMessage::Text { content, .. }) => {
                let settings = self.directory.get(chat);
                let text = with_group_name(&settings, &content);
                let key = format!("envelope:{}:report", test.id);
                if let Some(account) = &group.account {
                    let via = crate::domain::AccountKey {
                        bot: group.bot.clone(),
                        user_id: account.clone(),
                    };
                    reports.extend(settings.report_recipients(&[]).iter().map(|to| {
                        let key = format!("{key}:to:{to}");
                        private_message(
                            &via,
                            chat,
                            to,
                            key,
                            "red_envelope_report",
                            text.clone(),
                            announce_at,
                        )
                    }));
                }
                let alert = self
                    .alerts
                    .send(key, chat, "red_envelope_report", text, announce_at);
                if alert.is_none() && reports.is_empty() {
                    info!(test = %test.id, chat = %chat, "results kept in the API only: no [alerts] webhook_url, no admin to message privately");
                }
                reports.extend(alert);
            }
            Ok(_) => error!(test = %test.id, "the report is not text"),
            Err(e) => error!(test = %test.id, error = %e, "the report did not render"),
        }
        posts
            .into_iter()
            .enumerate()
            .map(|(i, (message, purpose))| NewSend {
                key: format!("envelope:{}:finished:{i}", test.id),
                chat: Some(chat.clone()),
                bot: Some(group.bot.clone()),
                to: to.clone(),
                message,
                purpose: purpose.into(),
                run: None,
                not_before: Some(announce_at),
                skip: None,
            })
            .chain(reports)
            .collect()
    }

    pub(super) fn render_post(
        &self,
        scripts: &Scripts,
        message: &Message,
        chat: &ChatId,
        extra: minijinja::Value,
    ) -> Result<OutMessage, String> {
        let settings = self.directory.get(chat);
        let now = self.now();
        let vars = || context! { ..extra, ..engine::vars::base(&Sender::default(), Role::Member, Some(chat), &settings, now) };
        message
            .push(&scripts.templates, vars, &[])
            .map_err(|e| e.to_string())
    }

    pub(super) fn render_reply(
        &self,
        scripts: &Scripts,
        message: &Message,
        chat: &ChatId,
        from: &Sender,
        now: DateTime<Utc>,
        extra: minijinja::Value,
    ) -> Option<Reply> {
        let settings = self.directory.get(chat);
        let role = scripts.commands.role_of(&settings, &from.user_id);
        let vars =
            || context! { ..extra, ..engine::vars::base(from, role, Some(chat), &settings, now) };
        message
            .reply(&scripts.templates, vars, &from.user_id)
            .map_err(|e| error!(chat = %chat, error = %e, "a red-envelope answer did not render"))
            .ok()
    }
}
