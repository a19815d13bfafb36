//! Members' claims of a running (or just finished) test, their grabs as the channel reports
//! them, and the answers members get — a claim, a late one, a refusal.

use super::*;

impl Envelopes {
    /// The test `event` claims, when it is a claim of a test in its group (running, or finished
    /// recently): such a message is the phrase and at most a few characters more, so moderation
    /// can skip it. Hand it to [`Self::claim`].
    pub fn claim_target(&self, event: &Event) -> Option<ClaimTarget> {
        let chat = event.chat_id()?;
        // Most groups have no test: no need to normalise their messages.
        let has_test = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(chat)
            || self
                .closed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains_key(chat);
        if !has_test {
            return None;
        }
        let text = engine::heard_text(event)?;
        let key = phrase_key(&text);
        if let Some(slot) = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(chat)
            .filter(|s| is_claim_of(&key, &s.phrase_key))
        {
            return Some(ClaimTarget {
                chat: chat.clone(),
                running: Some(Arc::clone(&slot.test)),
            });
        }
        let closed = self.closed.lock().unwrap_or_else(PoisonError::into_inner);
        closed
            .get(chat)
            .filter(|c| is_claim_of(&key, &c.phrase_key))
            .map(|_| ClaimTarget {
                chat: chat.clone(),
                running: None,
            })
    }

    /// Handles `event`, a claim of `target`; returns the answer for the member.
    pub async fn claim(&self, event: &Event, target: ClaimTarget) -> Option<Reply> {
        let ClaimTarget { chat, running } = target;
        let now = self.now();
        let scripts = self.scripts.current();
        let messages = scripts.red_envelope.messages.as_ref()?;
        let user = event.from.user_id.as_str();
        let Some(running) = running else {
            return self.late_answer(&scripts, messages, &chat, &event.from);
        };
        let mut run = running.lock().await;
        if run.done {
            drop(run);
            return self.late_answer(&scripts, messages, &chat, &event.from);
        }
        let outcome = run.claim_by(user, now);
        let envelope = texts::envelope(&run.test, event.account.is_none());
        let reply = |message: &Message, extra: minijinja::Value| {
            self.render_reply(&scripts, message, &chat, &event.from, now, extra)
        };
        match outcome {
            ClaimOutcome::Claimed {
                index,
                amount_fen,
                left,
            } => {
                let record = match self
                    .record_claim(
                        &run.test,
                        index,
                        &event.from,
                        amount_fen,
                        ClaimVia::Phrase,
                        now,
                    )
                    .await
                {
                    Ok(record) => record,
                    Err(e) => {
                        error!(test = %run.test.id, user, error = %e, "claim not recorded");
                        return Some(Reply::Text {
                            content: "记账没有成功，请稍后再发一次口令。".into(),
                            mentioned: vec![user.to_owned()],
                        });
                    }
                };
                info!(test = %run.test.id, chat = %chat, user, index, amount_fen, left, "share claimed");
                run.claims.push(record);
                let answer = reply(
                    &messages.claimed,
                    context! { envelope, claim => texts::claim(amount_fen, left) },
                );
                if left == 0 {
                    // The announcement waits for this answer to reach the member first.
                    self.finish_locked(&mut run, now, now + LAST_CLAIM_FIRST)
                        .await;
                }
                answer
            }
            ClaimOutcome::AlreadyClaimed { amount_fen } => reply(
                &messages.already_claimed,
                context! { envelope, claim => texts::claim(amount_fen, run.split.len() - run.claims.len()) },
            ),
            ClaimOutcome::Empty => reply(&messages.empty, context! { envelope }),
            ClaimOutcome::Closed => reply(&messages.closed, context! { envelope }),
        }
    }

    /// The answer to a member whose start was refused.
    pub fn refusal(&self, event: &Event, error: &StartError) -> Option<Reply> {
        let chat = event.chat_id()?;
        let scripts = self.scripts.current();
        let messages = scripts.red_envelope.messages.as_ref()?;
        let reason = error.chinese();
        self.render_reply(
            &scripts,
            &messages.not_started,
            chat,
            &event.from,
            self.now(),
            context! { reason },
        )
    }

    /// The answer to an admin whose cancellation found nothing to cancel (or failed).
    pub fn cancel_refusal(&self, event: &Event, error: &CancelError) -> Option<Reply> {
        let content = match error {
            CancelError::Store(_) => "系统出了点问题，红包测试没有取消成功，请稍后再试。",
            _ => "群里没有正在进行的红包测试。",
        };
        Some(Reply::Text {
            content: content.into(),
            mentioned: vec![event.from.user_id.clone()],
        })
    }

    /// The answer to a claim of a finished test.
    fn late_answer(
        &self,
        scripts: &Scripts,
        messages: &EnvelopeMessages,
        chat: &ChatId,
        from: &Sender,
    ) -> Option<Reply> {
        let (message, extra) = {
            let closed = self.closed.lock().unwrap_or_else(PoisonError::into_inner);
            let c = closed.get(chat)?;
            let envelope = texts::envelope(&c.test, false);
            match c.claimed.get(&from.user_id) {
                _ if c.cancelled => (&messages.cancelled, context! { envelope }),
                Some(&amount) => (
                    &messages.already_claimed,
                    context! { envelope, claim => texts::claim(amount, 0) },
                ),
                None if c.emptied => (&messages.empty, context! { envelope }),
                None => (&messages.closed, context! { envelope }),
            }
        };
        self.render_reply(scripts, message, chat, from, self.now(), extra)
    }

    /// Records a member's grab of a real WeChat envelope the bot account posted as a claim of
    /// the group's running test (the amount WeChat gave, 0 when not reported). Grabs with no
    /// test running, after its window or beyond its shares, and a member's second grab, are
    /// logged and not recorded. True when recorded.
    pub async fn record_grab(&self, event: &Event, amount_fen: Option<u64>) -> bool {
        let Some(chat) = event.chat_id() else {
            return false;
        };
        let user = event.from.user_id.as_str();
        let running = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(chat)
            .map(|slot| Arc::clone(&slot.test));
        let Some(running) = running else {
            info!(chat = %chat, user, "a red-envelope grab with no test running: not recorded");
            return false;
        };
        let now = self.now();
        let mut run = running.lock().await;
        if run.done {
            info!(chat = %chat, user, "a red-envelope grab after the test ended: not recorded");
            return false;
        }
        // What the platform reports is not trusted further than the envelope holds: a grab of
        // more than is left is refused, and the totals cannot wrap.
        let amount = amount_fen.unwrap_or(0);
        let claimed = run
            .claims
            .iter()
            .fold(0u64, |sum, c| sum.saturating_add(c.amount_fen));
        let left_fen = run.test.total_fen.saturating_sub(claimed);
        if amount > left_fen {
            warn!(test = %run.test.id, chat = %chat, user, amount_fen = amount, left_fen,
                "a red-envelope grab reports more than the envelope has left: not recorded");
            return false;
        }
        let outcome = run.claim_by(user, now);
        let ClaimOutcome::Claimed { index, left, .. } = outcome else {
            info!(test = %run.test.id, user, outcome = ?outcome, "a red-envelope grab not recorded");
            return false;
        };
        let record = match self
            .record_claim(
                &run.test,
                index,
                &event.from,
                amount,
                ClaimVia::WechatEnvelope,
                now,
            )
            .await
        {
            Ok(record) => record,
            Err(e) => {
                error!(test = %run.test.id, user, error = %e, "grab not recorded");
                return false;
            }
        };
        info!(test = %run.test.id, chat = %chat, user, index, amount_fen = amount, left,
            "red-envelope grab recorded");
        run.claims.push(record);
        if left == 0 {
            self.finish_locked(&mut run, now, now).await;
        }
        true
    }

    /// Writes share `index` as taken by `from`, with what the results need to know of them.
    async fn record_claim(
        &self,
        test: &TestRecord,
        index: usize,
        from: &Sender,
        amount_fen: u64,
        via: ClaimVia,
        at: DateTime<Utc>,
    ) -> Result<ClaimRecord, StoreError> {
        let store = self.store.clone();
        let (test_id, chat, from) = (test.id.clone(), test.chat_id.clone(), from.clone());
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        tokio::task::spawn_blocking(move || {
            let member = store.member(&chat, &from.user_id)?;
            let name = if !from.name.is_empty() {
                from.name.clone()
            } else if let Some(m) = member.as_ref().filter(|m| !m.name.is_empty()) {
                m.name.clone()
            } else {
                // Bot accounts send ids only; the member list has the names.
                store.roster_name(&chat, &from.user_id)?.unwrap_or_default()
            };
            let record = ClaimRecord {
                user_id: from.user_id.clone(),
                name,
                amount_fen,
                at,
                // This message is not counted yet: any count is an earlier message.
                spoke_before: member.is_some_and(|m| m.message_count > 0),
                via,
            };
            store.write(|tx| tx.put_claim(&test_id, index, &record))?;
            Ok(record)
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("claim task failed: {e}")))?
    }
}
