//! Every statement the store runs after connecting, with the schema name filled in once.
//!
//! Sessions are found through `name_key = sha256(name)` (the unique index) and `name` (so a
//! hash collision could never mix two sessions up).

/// The statements of one store, for its schema.
#[derive(Debug)]
pub(super) struct Sql {
    /// The quoted schema name, for the statements built per call (`sessions`).
    pub(super) schema: String,
    pub(super) session: String,
    pub(super) append: String,
    pub(super) advance: String,
    pub(super) advance_keep_all: String,
    pub(super) head: String,
    pub(super) latest: String,
    pub(super) get: String,
    pub(super) chain: String,
    pub(super) list: String,
    pub(super) prune: String,
    /// [`Store::delete`](crate::store::Store::delete), three statements in one transaction:
    /// `delete_lock` locks the session's row `FOR UPDATE`, so that no child of it can be
    /// created until the transaction ends (a child's creation reads its parent `FOR KEY
    /// SHARE`, see [`append`]); `delete_children` then finds and locks, from a newer snapshot,
    /// the children of the sessions `$1` names, level by level; `delete` removes the rows of
    /// the ids `$1` holds (their checkpoints and waits go by `ON DELETE CASCADE`).
    pub(super) delete_lock: String,
    pub(super) delete_children: String,
    pub(super) delete: String,
    pub(super) claim: String,
    pub(super) renew: String,
    pub(super) release: String,
    pub(super) record_graph: String,
    /// See [`Store::record_failure`](crate::store::Store::record_failure): the failure on
    /// the session's latest checkpoint if it is `$2`, and `failed` as its indexed status
    /// (the session's next append rewrites it).
    pub(super) record_failure: String,
    /// See [`Store::wake`](crate::store::Store::wake): the wake time becomes `now()` if the
    /// session's latest checkpoint is `$2` and waits (the wake trigger notifies workers).
    pub(super) wake: String,
    pub(super) graph_version: String,
    pub(super) graph_versions: String,
    pub(super) versions_in_use: String,
}

/// The columns [`read_graph_version`](super::reader::read_graph_version) decodes, in order.
const GRAPH_VERSION_COLUMNS: &str = "workflow, graph_hash, description, recorded_at_us";

/// The columns [`read_session`](super::reader::read_session) decodes, in order, but for the
/// waiting nodes (see [`session_columns`]).
const SESSION_COLUMNS: &str = "s.name, s.workflow, s.graph_hash, s.status, s.wait_node, \
                               s.node, s.head_seq, s.created_at_us, s.updated_at_us, s.wake_at, \
                               s.lease_owner, s.lease_expires_at";

/// Every column of a session's record, the nodes it waits at last (`NULL` unless it waits).
pub(super) fn session_columns(schema: &str) -> String {
    format!(
        "{SESSION_COLUMNS}, CASE WHEN s.status = 1 THEN ARRAY(\
         SELECT sw.node FROM {schema}.session_waits sw WHERE sw.session_id = s.id) END, \
         s.parent"
    )
}

/// The columns [`read_checkpoint`](super::reader::read_checkpoint) decodes, in order.
const CHECKPOINT_COLUMNS: &str =
    "c.seq, c.node, c.status, c.wait_node, c.created_at_us, c.depends_on, c.bytes";

impl Sql {
    /// `schema` is already quoted.
    pub(super) fn new(schema: &str) -> Sql {
        let session = "s.name_key = sha256($1) AND s.name = $1";
        let from =
            format!("FROM {schema}.sessions s JOIN {schema}.checkpoints c ON c.session_id = s.id");
        Sql {
            schema: schema.to_owned(),
            session: format!(
                "SELECT {} FROM {schema}.sessions s WHERE {session} AND s.status IS NOT NULL",
                session_columns(schema)
            ),
            append: append(schema),
            advance: advance(schema, true),
            advance_keep_all: advance(schema, false),
            head: format!(
                "SELECT s.head_seq, s.lease_epoch FROM {schema}.sessions s WHERE {session}"
            ),
            latest: format!(
                "SELECT {CHECKPOINT_COLUMNS} {from} WHERE {session} ORDER BY c.seq DESC LIMIT 1"
            ),
            get: format!("SELECT {CHECKPOINT_COLUMNS} {from} WHERE {session} AND c.seq = $2"),
            chain: format!(
                "SELECT {CHECKPOINT_COLUMNS} {from} WHERE {session} AND c.seq BETWEEN $2 AND $3 \
                 ORDER BY c.seq"
            ),
            list: format!(
                "SELECT c.seq, c.node, c.status, c.wait_node, c.created_at_us, \
                 octet_length(c.bytes)::bigint, c.audit, c.failure {from} WHERE {session} \
                 ORDER BY c.seq"
            ),
            prune: prune(schema),
            delete_lock: format!("SELECT s.id FROM {schema}.sessions s WHERE {session} FOR UPDATE"),
            delete_children: format!(
                "SELECT s.id, s.name FROM {schema}.sessions s \
                 WHERE sha256(s.parent) IN (SELECT sha256(p) FROM unnest($1::bytea[]) AS p) \
                 AND s.parent = ANY($1::bytea[]) \
                 ORDER BY s.id FOR UPDATE"
            ),
            delete: format!("DELETE FROM {schema}.sessions WHERE id = ANY($1::bigint[])"),
            claim: claim(schema),
            renew: format!(
                "UPDATE {schema}.sessions s \
                 SET lease_expires_at = now() + $4::bigint * interval '1 microsecond' \
                 WHERE {session} AND s.lease_owner = $2 AND s.lease_epoch = $3 \
                 RETURNING s.lease_expires_at"
            ),
            release: format!(
                "UPDATE {schema}.sessions s SET lease_owner = NULL, lease_expires_at = NULL \
                 WHERE {session} AND s.lease_owner = $2 AND s.lease_epoch = $3 RETURNING 1"
            ),
            // Concurrent callers (many workers starting at once) are serialized by the
            // primary key: exactly one inserts, the others' `DO NOTHING` answers no row.
            record_failure: format!(
                "WITH f AS (UPDATE {schema}.checkpoints c SET failure = $3 \
                 FROM {schema}.sessions s \
                 WHERE {session} AND s.head_seq = $2 AND c.session_id = s.id AND c.seq = $2 \
                 RETURNING c.session_id) \
                 UPDATE {schema}.sessions s SET status = {failed} FROM f \
                 WHERE s.id = f.session_id RETURNING 1",
                failed = crate::store::status_code::FAILED
            ),
            wake: format!(
                "UPDATE {schema}.sessions s SET wake_at = now() \
                 WHERE {session} AND s.head_seq = $2 AND EXISTS (\
                 SELECT 1 FROM {schema}.checkpoints c \
                 WHERE c.session_id = s.id AND c.seq = $2 AND c.status = {waiting}) \
                 RETURNING 1",
                waiting = crate::store::status_code::WAITING
            ),
            record_graph: format!(
                "INSERT INTO {schema}.graph_versions ({GRAPH_VERSION_COLUMNS}) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1"
            ),
            graph_version: format!(
                "SELECT {GRAPH_VERSION_COLUMNS} FROM {schema}.graph_versions \
                 WHERE workflow = $1 AND graph_hash = $2"
            ),
            // Sorted by the store, not here: hashes sort as `u64`s, not as signed integers.
            graph_versions: format!(
                "SELECT {GRAPH_VERSION_COLUMNS} FROM {schema}.graph_versions WHERE workflow = $1"
            ),
            // Sorted by the store, not here: workflow names as `str` sorts them (bytes, not
            // the database's collation), hashes and fingerprints as `u64`s.
            versions_in_use: format!(
                "SELECT workflow, graph_hash, state_schema, count(*) FROM {schema}.sessions \
                 WHERE workflow IS NOT NULL AND graph_hash IS NOT NULL \
                 GROUP BY workflow, graph_hash, state_schema"
            ),
        }
    }
}

/// A batch of compare-and-swap appends (at most one per session), with their retention, in
/// one statement and so one transaction. It answers one row per input: `ord` (1-based),
/// `outcome` (0 written, 1 conflict, 2 retry, 3 lease lost, 4 no such parent) and `found` (the
/// latest seq, for a conflict).
///
/// - The fence (`fence`, the lease epoch the writer holds; `NULL`: none) is checked on the
///   locked row, before the sequence numbers: a lost lease is never reported as a conflict.
/// - `wake_set` says whether to set `wake_at` (to `now() + wake_us`, `NULL` when `wake_us`
///   is); `workflow` (when not `NULL`) sets the workflow and its graph hash; `state_schema`
///   (when not `NULL`) sets the session's state schema fingerprint.
/// - The session's row records the new checkpoint's status, cursor and time (and, when it is
///   created, the first time); `audit` goes into the checkpoint's row. The nodes each append
///   waits at come flattened, as `$18` (the append's `ord`) and `$19` (a node): a written
///   session's rows of `session_waits` are replaced by them (the delete reads the snapshot,
///   which cannot see the inserted rows).
///
/// - `seen` reads the sessions as of the statement's snapshot; `locked` reads and locks their
///   newest committed versions, in id order so two batches never deadlock (`ORDER BY` is
///   applied before `FOR UPDATE` locks). The compare-and-swap is decided on `locked`.
/// - Data-modifying CTEs all see the snapshot, so retention can only be computed from it when
///   it is current for the session: when `seen` and `locked` differ (another writer committed
///   after the snapshot was taken), the append is answered "retry" and goes into the next
///   statement, which takes a new snapshot. A session created concurrently (the insert found
///   the name taken) is retried the same way, so its conflict reports the right `found`.
/// - A new session with a `parent` is created only if the parent's row exists: `parents`
///   reads it with `FOR KEY SHARE`, which waits for a transaction deleting it (that holds it
///   `FOR UPDATE`, see `Sql::delete_lock`) and then sees no row, and which a delete that comes
///   later waits for, to then find the new child. Otherwise the answer is "no such parent" —
///   unless the snapshot saw the parent (`parents_seen`): a parent updated after the snapshot
///   can be missed by the locking read's re-check (as `locked` can miss a session), so that
///   append is answered "retry" and decided on a new snapshot.
/// - Retention: with the new checkpoint and the newest `keep_last - 1` stored ones kept,
///   everything below the smallest of their sequence numbers and `depends_on` goes.
fn append(schema: &str) -> String {
    format!(
        "WITH input AS (
             SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bigint[], $4::text[],
                                  $5::smallint[], $6::text[], $7::bigint[], $8::bigint[],
                                  $9::bigint[], $10::bytea[], $11::bigint[], $12::boolean[],
                                  $13::bigint[], $14::text[], $15::bigint[], $16::bigint[],
                                  $17::bytea[], $20::bytea[])
                 WITH ORDINALITY AS i (name, expected, seq, node, status, wait_node,
                                       created_at_us, depends_on, keep_last, bytes, fence,
                                       wake_set, wake_us, workflow, graph_hash, state_schema,
                                       audit, parent, ord)
         ),
         seen AS (
             SELECT s.id, s.name, s.head_seq FROM {schema}.sessions s
             WHERE s.name_key IN (SELECT sha256(name) FROM input)
         ),
         locked AS (
             SELECT s.id, s.name, s.head_seq, s.lease_epoch FROM {schema}.sessions s
             WHERE s.name_key IN (SELECT sha256(name) FROM input)
             ORDER BY s.id
             FOR UPDATE
         ),
         parent_keys AS (
             SELECT sha256(parent) AS name_key FROM input
             WHERE parent IS NOT NULL AND expected IS NULL
         ),
         parents_seen AS (
             SELECT s.name FROM {schema}.sessions s
             WHERE s.name_key IN (SELECT name_key FROM parent_keys)
         ),
         parents AS (
             SELECT s.name FROM {schema}.sessions s
             WHERE s.name_key IN (SELECT name_key FROM parent_keys)
             ORDER BY s.id
             FOR KEY SHARE
         ),
         verdict AS (
             SELECT i.ord, l.id, l.head_seq AS found,
                 CASE
                     WHEN i.fence IS NOT NULL AND l.lease_epoch IS DISTINCT FROM i.fence
                         THEN 'lost'
                     WHEN l.id IS NULL AND i.expected IS NULL AND i.parent IS NOT NULL
                         AND NOT EXISTS (SELECT 1 FROM parents p WHERE p.name = i.parent)
                         THEN CASE WHEN EXISTS (
                             SELECT 1 FROM parents_seen p WHERE p.name = i.parent
                         ) THEN 'retry' ELSE 'orphan' END
                     WHEN l.id IS NULL AND i.expected IS NULL THEN 'create'
                     WHEN l.id IS NULL
                         OR i.expected IS DISTINCT FROM l.head_seq
                         OR i.seq <= i.expected THEN 'conflict'
                     WHEN e.id IS DISTINCT FROM l.id
                         OR e.head_seq IS DISTINCT FROM l.head_seq THEN 'retry'
                     ELSE 'advance'
                 END AS outcome
             FROM input i
             LEFT JOIN locked l ON l.name = i.name
             LEFT JOIN seen e ON e.name = i.name
         ),
         created AS (
             INSERT INTO {schema}.sessions
                 (name, head_seq, wake_at, workflow, graph_hash, state_schema, status, wait_node,
                  node, created_at_us, updated_at_us, parent)
             SELECT i.name, i.seq,
                    CASE WHEN i.wake_set THEN now() + i.wake_us * interval '1 microsecond' END,
                    i.workflow, CASE WHEN i.workflow IS NOT NULL THEN i.graph_hash END,
                    i.state_schema, i.status, i.wait_node, i.node, i.created_at_us,
                    i.created_at_us, i.parent
             FROM input i JOIN verdict v USING (ord)
             WHERE v.outcome = 'create'
             ORDER BY i.name
             ON CONFLICT (name_key) DO NOTHING
             RETURNING id, name
         ),
         advanced AS (
             UPDATE {schema}.sessions s SET head_seq = i.seq,
                 wake_at = CASE WHEN i.wake_set
                     THEN now() + i.wake_us * interval '1 microsecond' ELSE s.wake_at END,
                 workflow = coalesce(i.workflow, s.workflow),
                 graph_hash = CASE WHEN i.workflow IS NOT NULL THEN i.graph_hash
                     ELSE s.graph_hash END,
                 state_schema = coalesce(i.state_schema, s.state_schema),
                 status = i.status, wait_node = i.wait_node, node = i.node,
                 updated_at_us = i.created_at_us
             FROM input i JOIN verdict v USING (ord)
             WHERE v.outcome = 'advance' AND s.id = v.id
             RETURNING s.id, i.ord
         ),
         written AS (
             SELECT id, ord FROM advanced
             UNION ALL
             SELECT c.id, i.ord FROM created c JOIN input i ON i.name = c.name
         ),
         inserted AS (
             INSERT INTO {schema}.checkpoints
                 (session_id, seq, node, status, wait_node, created_at_us, depends_on, bytes,
                  audit)
             SELECT w.id, i.seq, i.node, i.status, i.wait_node, i.created_at_us, i.depends_on,
                    i.bytes, i.audit
             FROM written w JOIN input i USING (ord)
         ),
         waits_cleared AS (
             DELETE FROM {schema}.session_waits sw USING advanced a WHERE sw.session_id = a.id
         ),
         waits_added AS (
             INSERT INTO {schema}.session_waits (session_id, node, name)
             SELECT w.id, n.node, i.name
             FROM written w JOIN input i USING (ord)
             JOIN unnest($18::bigint[], $19::text[]) AS n (ord, node) ON n.ord = w.ord
         ),
         cutoff AS (
             SELECT w.id, LEAST(i.seq, i.depends_on, kept.oldest, kept.needed) AS below
             FROM written w JOIN input i USING (ord)
             CROSS JOIN LATERAL (
                 SELECT min(k.seq) AS oldest, min(k.depends_on) AS needed FROM (
                     SELECT c.seq, c.depends_on FROM {schema}.checkpoints c
                     WHERE c.session_id = w.id
                     ORDER BY c.seq DESC
                     LIMIT GREATEST(i.keep_last, 1) - 1
                 ) k
             ) kept
             WHERE i.keep_last IS NOT NULL
         ),
         pruned AS (
             DELETE FROM {schema}.checkpoints c USING cutoff
             WHERE c.session_id = cutoff.id AND c.seq < cutoff.below
         )
         SELECT v.ord,
             CASE WHEN w.id IS NOT NULL THEN 0 WHEN v.outcome = 'conflict' THEN 1
                  WHEN v.outcome = 'lost' THEN 3 WHEN v.outcome = 'orphan' THEN 4 ELSE 2 END,
             v.found
         FROM verdict v LEFT JOIN written w USING (ord)"
    )
}

/// One append to an existing session (`expected` is not `NULL`): the hot path of a session
/// that checkpoints every step, with the parameters of [`append`] as scalars (`$16` the
/// audit record, `$17` the nodes it waits at), `keep_last` last. The session's row takes the
/// checkpoint's status, cursor and time in the same `UPDATE` (an update that leaves every
/// indexed column as it was stays a HOT update); the rows of `session_waits` are replaced,
/// which for a session running from step to step is one probe of an index that finds
/// nothing. Leaner than the batch statement: the compare-and-swap and the fence are the `WHERE`
/// of one `UPDATE` of the session's row, which (under READ COMMITTED) waits for a concurrent
/// writer of the row and then re-checks the condition on its newest version, so no separate
/// lock step or snapshot check is needed. Retention reads the chain from the statement's
/// snapshot, which is current for the session whenever the update happened: another append
/// would have moved `head_seq` (and failed the condition), and claims and renewals do not
/// touch checkpoints. It answers how many rows it wrote (0 or 1); on 0 the store asks
/// [`Sql::head`] why.
///
/// Two statements, with retention (`retention`: `$18` is `keep_last`) and without (17
/// parameters), rather than one that skips retention when `keep_last` is `NULL`: PostgreSQL
/// plans a prepared statement afresh for its first five runs, then keeps a generic plan only
/// if that plan is estimated no dearer than the fresh ones. With `keep_last` `NULL`, the fresh
/// plans fold the retention CTEs away and the generic one cannot, so it was never kept: every
/// append was planned again (measured with `pg_stat_statements`, `track_planning`: 2,000
/// plans for 2,000 calls, planning 2.7 times the execution time).
fn advance(schema: &str, retention: bool) -> String {
    let retention = if retention {
        format!(
            ",
         cutoff AS (
             SELECT a.id, LEAST($3::bigint, $8::bigint, kept.oldest, kept.needed) AS below
             FROM advanced a
             CROSS JOIN LATERAL (
                 SELECT min(k.seq) AS oldest, min(k.depends_on) AS needed FROM (
                     SELECT c.seq, c.depends_on FROM {schema}.checkpoints c
                     WHERE c.session_id = a.id
                     ORDER BY c.seq DESC
                     LIMIT GREATEST($18::bigint, 1) - 1
                 ) k
             ) kept
         ),
         pruned AS (
             DELETE FROM {schema}.checkpoints c USING cutoff
             WHERE c.session_id = cutoff.id AND c.seq < cutoff.below
         )"
        )
    } else {
        String::new()
    };
    format!(
        "WITH advanced AS (
             UPDATE {schema}.sessions s SET head_seq = $3::bigint,
                 wake_at = CASE WHEN $11::boolean
                     THEN now() + $12::bigint * interval '1 microsecond' ELSE s.wake_at END,
                 workflow = coalesce($13::text, s.workflow),
                 graph_hash = CASE WHEN $13::text IS NOT NULL THEN $14::bigint
                     ELSE s.graph_hash END,
                 state_schema = coalesce($15::bigint, s.state_schema),
                 status = $5::smallint, wait_node = $6::text, node = $4::text,
                 updated_at_us = $7::bigint
             WHERE s.name_key = sha256($1::bytea) AND s.name = $1::bytea
               AND s.head_seq = $2::bigint AND $3::bigint > $2::bigint
               AND ($10::bigint IS NULL OR s.lease_epoch = $10::bigint)
             RETURNING s.id
         ),
         inserted AS (
             INSERT INTO {schema}.checkpoints
                 (session_id, seq, node, status, wait_node, created_at_us, depends_on, bytes,
                  audit)
             SELECT id, $3::bigint, $4::text, $5::smallint, $6::text, $7::bigint, $8::bigint,
                    $9::bytea, $16::bytea
             FROM advanced
         ),
         waits_cleared AS (
             DELETE FROM {schema}.session_waits sw USING advanced a WHERE sw.session_id = a.id
         ),
         waits_added AS (
             INSERT INTO {schema}.session_waits (session_id, node, name)
             SELECT a.id, n.node, $1::bytea FROM advanced a, unnest($17::text[]) AS n (node)
         ){retention}
         SELECT count(*) FROM advanced"
    )
}

/// `claim`: `$1` owner, `$2`/`$3` the (workflow, graph hash) pairs as two arrays, `$4` the
/// limit, `$5` the ttl in microseconds. One statement: the materialized CTE picks and locks
/// the runnable sessions no live lease holds, oldest wake time first, skipping rows another
/// transaction has locked (a concurrent claim, an append) rather than waiting for them;
/// locking re-reads each row's newest version and re-checks the conditions, so a session
/// another claim just took is not taken again. The update raises each one's epoch.
fn claim(schema: &str) -> String {
    format!(
        "WITH candidates AS MATERIALIZED (
             SELECT s.id FROM {schema}.sessions s
             WHERE (s.workflow, s.graph_hash) IN (
                       SELECT * FROM unnest($2::text[], $3::bigint[]))
               AND s.wake_at <= now()
               AND (s.lease_owner IS NULL OR s.lease_expires_at <= now())
             ORDER BY s.wake_at
             LIMIT $4
             FOR UPDATE OF s SKIP LOCKED
         )
         UPDATE {schema}.sessions s
         SET lease_owner = $1, lease_epoch = s.lease_epoch + 1,
             lease_expires_at = now() + $5::bigint * interval '1 microsecond'
         FROM candidates c
         WHERE s.id = c.id
         RETURNING s.name, s.lease_epoch, s.workflow, s.graph_hash, s.lease_expires_at"
    )
}

/// `prune`: the same retention rule without a new checkpoint, `$2` = max(keep_last, 1). It
/// answers `(removed, current)`; when the snapshot was not current for the session (an append
/// committed after it was taken), nothing is removed and the store runs it again.
fn prune(schema: &str) -> String {
    format!(
        "WITH seen AS (
             SELECT s.id, s.head_seq FROM {schema}.sessions s
             WHERE s.name_key = sha256($1) AND s.name = $1
         ),
         locked AS (
             SELECT s.id, s.head_seq FROM {schema}.sessions s
             WHERE s.name_key = sha256($1) AND s.name = $1
             FOR UPDATE
         ),
         fresh AS (
             SELECT l.id FROM locked l JOIN seen e ON e.id = l.id AND e.head_seq = l.head_seq
         ),
         kept AS (
             SELECT min(k.seq) AS oldest, min(k.depends_on) AS needed FROM (
                 SELECT c.seq, c.depends_on FROM {schema}.checkpoints c, fresh
                 WHERE c.session_id = fresh.id
                 ORDER BY c.seq DESC
                 LIMIT $2
             ) k
         ),
         pruned AS (
             DELETE FROM {schema}.checkpoints c USING fresh, kept
             WHERE c.session_id = fresh.id AND c.seq < LEAST(kept.oldest, kept.needed)
             RETURNING 1
         )
         SELECT (SELECT count(*) FROM pruned),
                NOT EXISTS (SELECT 1 FROM locked) OR EXISTS (SELECT 1 FROM fresh)"
    )
}
