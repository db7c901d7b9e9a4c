//! What the two topic-level trees (subscriptions by filter, retained messages by topic) share:
//! pruning an emptied path and dropping a subtree, both without recursion, since a client
//! chooses the depth of a path.

/// A node of a tree keyed by topic level.
pub(super) trait LevelNode: Sized {
    fn child(&self, level: &str) -> Option<&Self>;
    fn child_mut(&mut self, level: &str) -> Option<&mut Self>;
    fn remove_child(&mut self, level: &str);
    /// Takes every child out, leaving the node without children.
    fn take_children(&mut self) -> Vec<Self>;
    /// Whether the node holds nothing: no children and no content of its own.
    fn is_empty(&self) -> bool;
    /// Whether this node must stay when its child on a pruned path goes: it has content
    /// of its own, or other children.
    fn holds_more_than_one_child(&self) -> bool;
}

/// Removes the chain of nodes that held only `path`'s (now empty) node: walks down once to
/// find the deepest node that stays, then cuts its child on the path. The cut-off chain is
/// dropped iteratively (see [`drop_children`]).
pub(super) fn prune<N: LevelNode>(root: &mut N, path: &str) {
    let mut cut = 0;
    let mut node = &*root;
    for (depth, level) in path.split('/').enumerate() {
        if depth == 0 || node.holds_more_than_one_child() {
            cut = depth;
        }
        match node.child(level) {
            Some(child) => node = child,
            None => return,
        }
    }
    if !node.is_empty() {
        return;
    }
    let mut node = root;
    for (depth, level) in path.split('/').enumerate() {
        if depth == cut {
            node.remove_child(level);
            return;
        }
        match node.child_mut(level) {
            Some(child) => node = child,
            None => return,
        }
    }
}

/// Drops `node`'s subtree iteratively, for a `Drop` implementation: the derived drop would
/// recurse once per level.
pub(super) fn drop_children<N: LevelNode>(node: &mut N) {
    let mut pending = node.take_children();
    while let Some(mut node) = pending.pop() {
        pending.extend(node.take_children());
        // `node` has no children left: dropping it here does not recurse.
    }
}
