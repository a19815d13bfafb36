//! Teaching the learned layer: the operator's labels (findings admins judged right or wrong in
//! the console, `store::labels`) join the project's corpus, and the classifier trained on both
//! is put in force for every version of the bot-scripts ([`LiveScripts::set_learned`]). Done when
//! the service starts and after every judgement, one training at a time, off the async threads.

use std::sync::Arc;

use tracing::info;

use crate::engine::moderation::learned::{Classifier, shipped_samples};
use crate::scripts::live::LiveScripts;
use crate::store::{Label, Store, StoreError};

/// How many times an operator's label counts against one sample of the shipped corpus: their
/// own groups' messages are what the model must get right, and there are few of them.
pub const LABEL_WEIGHT: usize = 3;

/// Trains a classifier on the shipped corpus plus `labels`.
pub fn train_with(labels: &[Label]) -> Classifier {
    let shipped = shipped_samples();
    let own = labels.iter().flat_map(|label| {
        std::iter::repeat_n((label.text.as_str(), label.label == "spam"), LABEL_WEIGHT)
    });
    Classifier::train(shipped.iter().map(|m| (m.text.as_str(), m.spam)).chain(own))
}

/// Serialises trainings, so that the last one put in force has read the latest labels.
#[derive(Default)]
pub struct Teacher {
    turn: tokio::sync::Mutex<()>,
}

impl Teacher {
    /// Reads the labels, trains, and puts the classifier in force. With no labels the shipped
    /// classifier stays (nothing to train again).
    pub async fn retrain(&self, store: &Store, scripts: &LiveScripts) -> Result<(), StoreError> {
        let _turn = self.turn.lock().await;
        let store = store.clone();
        let trained = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            let labels = store.labels()?;
            if labels.is_empty() {
                return Ok(None);
            }
            Ok(Some((labels.len(), train_with(&labels))))
        })
        .await
        .map_err(|e| StoreError::Db(format!("the learned layer's training stopped: {e}")))??;
        if let Some((labels, classifier)) = trained {
            scripts.set_learned(Arc::new(classifier));
            info!(
                labels,
                "the learned layer was trained with the operator's labels"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(text: &str, spam: bool) -> Label {
        serde_json::from_value(serde_json::json!({
            "entry_id": 1, "label": if spam { "spam" } else { "ham" }, "text": text,
            "normalized": text, "chat_id": "g", "check": "ad-intent", "by": "operator:li",
            "at": "2026-12-06T09:00:00Z",
        }))
        .unwrap()
    }

    /// A message an admin marked wrong (误判) scores lower afterwards, and so does one like it;
    /// one they confirmed scores higher.
    #[test]
    fn labels_move_the_score() {
        let shipped = train_with(&[]);
        let ordinary = "本周六下午两点，财税沙龙在三楼会议室，欢迎各位会员参加，到场有茶歇";
        let ad = "小区团购：进口牛奶整箱特价，本周下单送货到家";
        let taught = train_with(&[label(ordinary, false), label(ad, true)]);
        assert!(
            taught.score(ordinary) < shipped.score(ordinary) - 0.5,
            "{} → {}",
            shipped.score(ordinary),
            taught.score(ordinary)
        );
        let like_it = "本周六下午三点，财税沙龙在二楼会议室，欢迎会员参加";
        assert!(taught.score(like_it) < shipped.score(like_it));
        assert!(taught.score(ad) > shipped.score(ad) + 0.5);
    }
}
