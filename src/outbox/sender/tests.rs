use super::*;

fn entry(id: u64, purpose: &str) -> OutboxEntry {
    OutboxEntry {
        id,
        key: format!("k{id}"),
        chat: None,
        bot: None,
        to: Destination::Webhook { url: String::new() },
        message: crate::domain::OutMessage::Markdown {
            content: String::new(),
        },
        purpose: purpose.into(),
        run: None,
        not_before: None,
        state: OutboxState::Pending,
        attempts: 0,
        pieces_done: 0,
        last_error: None,
        created_at: Utc::now(),
        updated_at: None,
    }
}

#[test]
fn welcomes_and_replies_pass_waiting_notices_and_keep_their_order() {
    let mut queue = VecDeque::new();
    for (id, purpose) in [
        (1, "notify_admins"),
        (2, "moderation_warning"),
        (3, "morning-report"),
        (4, "welcome"),
        (5, "notify_admins"),
        (6, "reply"),
        (7, "morning-report"),
    ] {
        queue_by_priority(&mut queue, Queued::of(&entry(id, purpose), Ok(1)));
    }
    let order: Vec<u64> = queue.iter().map(|q| q.id).collect();
    assert_eq!(order, [4, 6, 3, 7, 1, 2, 5]);
}
