//! Every kind of change to a state type between two releases, on the same workflow: a session
//! saved by the first release, waiting for a decision, is opened by the second. Each change is
//! either refused with `Error::SchemaMismatch` before a byte is decoded, or migrated through
//! `migrate_from` — never misread, which is what bincode alone does with a renamed or swapped
//! field.

use graph_runtime::prelude::*;
use graph_runtime::{Error, Status};
use serde::{Deserialize, Serialize};

/// The same workflow (same name, same graph) for any state type: `draft` then an interrupt.
macro_rules! review_flow {
    ($state:ty $(, migrate_from = [$($old:ty),*])?) => {
        #[workflow(state = $state $(, migrate_from = [$($old),*])?)]
        pub mod review {
            use super::*;

            edge!(START -> draft);
            edge!(draft -> approve);
            edge!(approve -> END);

            #[node]
            async fn draft(_doc: &mut $state) {}

            #[node(interrupt)]
            async fn approve(_doc: &mut $state, _ok: bool) {}
        }
    };
}

/// What the first release stores.
mod release1 {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
    pub enum Stage {
        Draft,
        Published,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
    pub struct Meta {
        pub words: u32,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
    pub struct Doc {
        pub title: String,
        pub body: String,
        pub stage: Stage,
        pub meta: Meta,
    }

    review_flow!(Doc);

    pub fn doc() -> Doc {
        Doc {
            title: "Title".into(),
            body: "Body".into(),
            stage: Stage::Draft,
            meta: Meta { words: 2 },
        }
    }
}

/// Saves a first-release session waiting at `approve`, in a fresh store.
async fn saved_by_release1() -> MemoryStore {
    let store = MemoryStore::new();
    let runner = Runner::new(release1::review::Workflow, store.clone());
    let out = runner.start("doc-1", release1::doc()).await.unwrap();
    assert!(matches!(
        out,
        Outcome::Interrupted {
            node: "approve",
            ..
        }
    ));
    store
}

/// Opens the first release's session with `workflow` every way a caller can, and expects a
/// schema mismatch from each, with nothing written.
async fn refused<W>(workflow: W)
where
    W: graph_runtime::Workflow,
    W::Input: From<bool>,
{
    let store = saved_by_release1().await;
    let runner = Runner::new(workflow, store.clone());
    let stored = release1::review::STATE_SCHEMA;
    assert_ne!(
        stored,
        W::STATE_SCHEMA,
        "the change must change the fingerprint"
    );
    let results = [
        runner.state("doc-1").await.map(|_| ()),
        runner.resume("doc-1").await.map(|_| ()),
        runner.resume_with("doc-1", true.into()).await.map(|_| ()),
        runner.fork("doc-1", 0, "doc-1-fork").await.map(|_| ()),
    ];
    for result in results {
        match result {
            Err(Error::SchemaMismatch {
                what: "state",
                stored: s,
                compiled: c,
                ..
            }) => assert_eq!((s, c), (stored, W::STATE_SCHEMA)),
            other => panic!("expected a schema mismatch, got {other:?}"),
        }
    }
    assert_eq!(
        graph_runtime::store::Store::list(&store, "doc-1")
            .await
            .unwrap()
            .len(),
        2,
        "nothing written"
    );
}

/// Each release's `Input` is its own generated enum with one `Approve(bool)` variant; this
/// lets [`refused`] build one for any of them.
macro_rules! input_from_bool {
    ($module:path) => {
        impl From<bool> for $module {
            fn from(ok: bool) -> Self {
                <$module>::Approve(ok)
            }
        }
    };
}

mod added_field {
    use super::*;
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
    pub struct Doc {
        pub title: String,
        pub body: String,
        pub stage: release1::Stage,
        pub meta: release1::Meta,
        pub tags: Vec<String>,
    }
    review_flow!(Doc);
    input_from_bool!(review::Input);
}

mod removed_field {
    use super::*;
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
    pub struct Doc {
        pub title: String,
        pub stage: release1::Stage,
        pub meta: release1::Meta,
    }
    review_flow!(Doc);
    input_from_bool!(review::Input);
}

mod renamed_field {
    use super::*;
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
    pub struct Doc {
        pub headline: String,
        pub body: String,
        pub stage: release1::Stage,
        pub meta: release1::Meta,
    }
    review_flow!(Doc);
    input_from_bool!(review::Input);
}

mod swapped_fields {
    use super::*;
    /// The dangerous one: bincode would decode the body as the title and the title as the body.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
    pub struct Doc {
        pub body: String,
        pub title: String,
        pub stage: release1::Stage,
        pub meta: release1::Meta,
    }
    review_flow!(Doc);
    input_from_bool!(review::Input);
}

mod reordered_variants {
    use super::*;
    /// bincode stores the variant index: reordering would read `Draft` as `Published`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
    pub enum Stage {
        Published,
        Draft,
    }
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
    pub struct Doc {
        pub title: String,
        pub body: String,
        pub stage: Stage,
        pub meta: release1::Meta,
    }
    review_flow!(Doc);
    input_from_bool!(review::Input);
}

mod changed_nested_type {
    use super::*;
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
    pub struct Meta {
        pub words: u64,
    }
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
    pub struct Doc {
        pub title: String,
        pub body: String,
        pub stage: release1::Stage,
        pub meta: Meta,
    }
    review_flow!(Doc);
    input_from_bool!(review::Input);
}

#[tokio::test]
async fn an_added_field_is_refused() {
    refused(added_field::review::Workflow).await;
}

#[tokio::test]
async fn a_removed_field_is_refused() {
    refused(removed_field::review::Workflow).await;
}

#[tokio::test]
async fn a_renamed_field_is_refused() {
    refused(renamed_field::review::Workflow).await;
}

#[tokio::test]
async fn swapped_fields_of_one_type_are_refused() {
    refused(swapped_fields::review::Workflow).await;
}

#[tokio::test]
async fn reordered_variants_are_refused() {
    refused(reordered_variants::review::Workflow).await;
}

#[tokio::test]
async fn a_changed_nested_type_is_refused() {
    refused(changed_nested_type::review::Workflow).await;
}

/// A renamed Rust field that keeps its serde name is the same data: no mismatch.
mod renamed_with_serde_rename {
    use super::*;
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
    pub struct Document {
        #[serde(rename = "title")]
        pub headline: String,
        pub body: String,
        pub stage: release1::Stage,
        pub meta: release1::Meta,
    }
    review_flow!(Document);
}

#[tokio::test]
async fn a_rust_rename_that_keeps_the_serde_name_reads_the_same_data() {
    let store = saved_by_release1().await;
    let runner = Runner::new(renamed_with_serde_rename::review::Workflow, store);
    let out = runner
        .resume_with(
            "doc-1",
            renamed_with_serde_rename::review::Input::Approve(true),
        )
        .await
        .unwrap();
    let doc = out.into_state();
    assert_eq!(
        (doc.headline.as_str(), doc.body.as_str()),
        ("Title", "Body")
    );
}

/// The second release with a migration from the first release's type.
mod migrated {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
    pub struct Doc {
        pub title: String,
        pub body: String,
        pub published: bool,
        pub words: u64,
        pub tags: Vec<String>,
    }

    impl From<release1::Doc> for Doc {
        fn from(old: release1::Doc) -> Self {
            Doc {
                title: old.title,
                body: old.body,
                published: old.stage == release1::Stage::Published,
                words: u64::from(old.meta.words),
                tags: vec!["migrated".into()],
            }
        }
    }

    review_flow!(Doc, migrate_from = [release1::Doc]);
}

#[tokio::test]
async fn a_listed_old_type_is_migrated_and_the_next_checkpoint_uses_the_new_schema() {
    let store = saved_by_release1().await;
    let runner = Runner::new(migrated::review::Workflow, store.clone());
    let want = migrated::Doc {
        title: "Title".into(),
        body: "Body".into(),
        published: false,
        words: 2,
        tags: vec!["migrated".into()],
    };
    // History written by the first release reads as the new type while the old one is listed.
    let snapshot = runner.state("doc-1").await.unwrap().unwrap();
    assert_eq!(snapshot.state, want);
    assert_eq!(
        snapshot.status,
        Status::Waiting {
            node: "approve".into()
        }
    );
    assert_eq!(
        runner.state_at("doc-1", 0).await.unwrap().unwrap().state,
        want
    );
    let out = runner
        .resume_with("doc-1", migrated::review::Input::Approve(true))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Completed(want.clone()));
    // The checkpoints written since are in the new schema: a release without the migration
    // reads the latest, and refuses the first release's.
    let without = Runner::new(added_field_again::review::Workflow, store);
    assert_eq!(
        added_field_again::review::STATE_SCHEMA,
        migrated::review::STATE_SCHEMA
    );
    assert_eq!(
        without.state("doc-1").await.unwrap().unwrap().state.tags,
        ["migrated"]
    );
    assert!(matches!(
        without.state_at("doc-1", 0).await,
        Err(Error::SchemaMismatch { .. })
    ));
}

/// The migrated release's state type, without `migrate_from`.
mod added_field_again {
    pub use super::migrated::Doc;
    use super::*;
    review_flow!(Doc);
}
