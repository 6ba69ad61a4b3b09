//! The hub with a fake clock: `t0 + Duration`, moved by hand.

use super::*;

fn ids(r: &Replay) -> Vec<u64> {
    r.messages.iter().map(|m| m.id()).collect()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn limits(backlog: usize, ttl: u64, max_channels: usize) -> Limits {
    Limits {
        backlog,
        message_ttl: secs(ttl),
        max_channels,
    }
}

fn publish(hub: &mut Hub<u32>, channel: &str, data: &str, now: Instant) -> u64 {
    hub.publish(channel, data.into(), now)
        .expect("under the channel limit")
        .message
        .id()
}

fn subscribe(
    hub: &mut Hub<u32>,
    channel: &str,
    since: Option<u64>,
    g: u32,
    now: Instant,
) -> Replay {
    hub.subscribe(channel, since, &g, now)
        .expect("under the channel limit")
}

#[test]
fn ids_backlog_and_missed() {
    let t0 = Instant::now();
    let mut hub: Hub<u32> = Hub::with_backlog(3);
    for i in 1..=5 {
        let p = hub.publish("a", format!("m{i}").into(), t0).unwrap();
        assert_eq!(p.message.id(), i);
        assert_eq!(p.subscribers, 0);
    }
    // Backlog holds 3, 4, 5.
    let r = subscribe(&mut hub, "a", Some(0), 1, t0);
    assert_eq!((ids(&r), r.missed, r.last_id), (vec![3, 4, 5], 2, 5));
    assert_eq!(&*r.channel, "a");
    let r = subscribe(&mut hub, "a", Some(3), 1, t0);
    assert_eq!((ids(&r), r.missed), (vec![4, 5], 0));
    let r = subscribe(&mut hub, "a", Some(5), 1, t0);
    assert_eq!((ids(&r), r.missed), (vec![], 0));
    let r = subscribe(&mut hub, "a", None, 1, t0);
    assert_eq!((ids(&r), r.missed, r.last_id), (vec![], 0, 5));
    // From the future (an earlier life of the server): the whole
    // backlog, as since=0, with what left it counted.
    let r = subscribe(&mut hub, "a", Some(99), 2, t0);
    assert_eq!((ids(&r), r.missed), (vec![3, 4, 5], 2));
    let r = subscribe(&mut hub, "a", Some(6), 2, t0);
    assert_eq!((ids(&r), r.missed), (vec![3, 4, 5], 2));
    // A channel this life has not seen yet: nothing to replay, nothing missed.
    let r = subscribe(&mut hub, "fresh", Some(7), 2, t0);
    assert_eq!((ids(&r), r.missed, r.last_id), (vec![], 0, 0));
    // Other channels have their own ids.
    assert_eq!(publish(&mut hub, "b", "x", t0), 1);
    // a, fresh (made by subscribing) and b.
    assert_eq!(hub.stats().channels, 3);
}

#[test]
fn the_replay_names_the_channel_with_the_hubs_arc() {
    let t0 = Instant::now();
    let mut hub: Hub<u32> = Hub::with_backlog(3);
    let r = subscribe(&mut hub, "a", None, 1, t0);
    let p = hub.publish("a", "x".into(), t0).unwrap();
    assert!(Arc::ptr_eq(&r.channel, p.message.channel()));
}

#[test]
fn groups_once_each() {
    let t0 = Instant::now();
    let mut hub: Hub<u32> = Hub::with_backlog(8);
    for g in [1, 1, 2, 1, 3] {
        subscribe(&mut hub, "a", None, g, t0);
    }
    let p = hub.publish("a", "x".into(), t0).unwrap();
    assert_eq!(p.subscribers, 5);
    let mut g = p.groups.clone();
    g.sort();
    assert_eq!(g, vec![1, 2, 3]);
    hub.unsubscribe("a", &2, t0);
    hub.unsubscribe("a", &2, t0); // not subscribed any more: ignored
    hub.unsubscribe("nope", &1, t0);
    let p = hub.publish("a", "y".into(), t0).unwrap();
    assert_eq!((p.subscribers, p.groups.len()), (4, 2));
    assert_eq!(hub.stats().subscribers, 4);
}

#[test]
fn missed_with_empty_backlog() {
    let t0 = Instant::now();
    let mut hub: Hub<u32> = Hub::with_backlog(0);
    publish(&mut hub, "a", "x", t0);
    publish(&mut hub, "a", "y", t0);
    let r = subscribe(&mut hub, "a", Some(0), 1, t0);
    assert_eq!((ids(&r), r.missed), (vec![], 2));
}

#[test]
fn messages_leave_the_backlog_at_their_age_and_empty_channels_go() {
    let t0 = Instant::now();
    let mut hub: Hub<u32> = Hub::new(limits(8, 10, 100));
    publish(&mut hub, "a", "a1", t0);
    publish(&mut hub, "b", "b1", t0);
    publish(&mut hub, "a", "a2", t0 + secs(5));
    assert_eq!(hub.next_expiry(), Some(t0 + secs(10)));
    // Nothing is due a moment early.
    hub.expire(t0 + secs(9), usize::MAX);
    assert_eq!(hub.stats().channels, 2);
    hub.expire(t0 + secs(10), usize::MAX);
    // b had one message, now gone with its channel; a keeps its younger one.
    assert_eq!(hub.stats().channels, 1);
    let r = subscribe(&mut hub, "a", Some(0), 1, t0 + secs(10));
    assert_eq!((ids(&r), r.missed, r.last_id), (vec![2], 1, 2));
    hub.unsubscribe("a", &1, t0 + secs(10));
    assert_eq!(hub.next_expiry(), Some(t0 + secs(15)));
    hub.expire(t0 + secs(15), usize::MAX);
    assert_eq!(
        hub.stats(),
        HubStats {
            channels: 0,
            subscribers: 0,
            published: 3
        }
    );
    // Made again, it starts a new life: ids from 1.
    assert_eq!(publish(&mut hub, "b", "again", t0 + secs(16)), 1);
}

#[test]
fn a_replay_leaves_out_expired_messages_before_any_expire_runs() {
    let t0 = Instant::now();
    let mut hub: Hub<u32> = Hub::new(limits(8, 10, 100));
    publish(&mut hub, "a", "old", t0);
    publish(&mut hub, "a", "new", t0 + secs(6));
    let r = subscribe(&mut hub, "a", Some(0), 1, t0 + secs(11));
    assert_eq!((ids(&r), r.missed), (vec![2], 1));
}

#[test]
fn a_channel_with_a_subscriber_stays_and_goes_at_the_last_unsubscribe() {
    let t0 = Instant::now();
    let mut hub: Hub<u32> = Hub::new(limits(8, 10, 100));
    subscribe(&mut hub, "held", None, 1, t0);
    subscribe(&mut hub, "held", None, 2, t0);
    publish(&mut hub, "held", "m", t0);
    hub.expire(t0 + secs(60), usize::MAX);
    assert_eq!(hub.stats().channels, 1, "subscribers keep it");
    let r = subscribe(&mut hub, "held", Some(0), 3, t0 + secs(60));
    assert_eq!((ids(&r), r.missed, r.last_id), (vec![], 1, 1));
    for g in [1, 2] {
        hub.unsubscribe("held", &g, t0 + secs(61));
        assert_eq!(hub.stats().channels, 1);
    }
    hub.unsubscribe("held", &3, t0 + secs(61));
    assert_eq!(hub.stats().channels, 0);
    // A channel only ever subscribed to goes with its last subscriber at once.
    subscribe(&mut hub, "sub-only", None, 1, t0 + secs(62));
    assert_eq!(hub.stats().channels, 1);
    hub.unsubscribe("sub-only", &1, t0 + secs(62));
    assert_eq!(hub.stats().channels, 0);
    assert_eq!(hub.stats().subscribers, 0);
}

#[test]
fn without_a_backlog_ids_outlive_the_last_message_by_its_lifetime() {
    let t0 = Instant::now();
    let mut hub: Hub<u32> = Hub::new(limits(0, 10, 100));
    assert_eq!(publish(&mut hub, "a", "x", t0), 1);
    subscribe(&mut hub, "a", None, 1, t0 + secs(1));
    hub.unsubscribe("a", &1, t0 + secs(2));
    assert_eq!(
        hub.stats().channels,
        1,
        "a message of it is younger than its lifetime"
    );
    assert_eq!(publish(&mut hub, "a", "y", t0 + secs(3)), 2);
    hub.expire(t0 + secs(10), usize::MAX);
    assert_eq!(hub.stats().channels, 1, "the second message is 7 s old");
    hub.expire(t0 + secs(13), usize::MAX);
    assert_eq!(hub.stats().channels, 0);
}

#[test]
fn past_the_channel_limit_a_new_channel_is_refused_and_nothing_changes() {
    let t0 = Instant::now();
    let mut hub: Hub<u32> = Hub::new(limits(8, 10, 2));
    publish(&mut hub, "a", "1", t0);
    subscribe(&mut hub, "b", None, 1, t0);
    let before = hub.stats();
    assert_eq!(hub.publish("c", "x".into(), t0).err(), Some(ChannelLimit));
    assert_eq!(hub.subscribe("c", None, &1, t0).err(), Some(ChannelLimit));
    assert_eq!(hub.stats(), before);
    // Channels that exist take requests as before.
    assert_eq!(publish(&mut hub, "a", "2", t0), 2);
    assert_eq!(hub.publish("b", "x".into(), t0).unwrap().subscribers, 1);
    assert_eq!(ids(&subscribe(&mut hub, "a", Some(0), 2, t0)), vec![1, 2]);
    hub.unsubscribe("a", &2, t0);
    // Once one goes, a new one may be made.
    hub.unsubscribe("b", &1, t0);
    hub.expire(t0 + secs(10), usize::MAX);
    assert_eq!(hub.stats().channels, 0, "every message was from t0");
    assert_eq!(publish(&mut hub, "c", "x", t0 + secs(10)), 1);
    assert_eq!(publish(&mut hub, "d", "x", t0 + secs(10)), 1);
}

#[test]
fn expire_keeps_to_its_budget() {
    let t0 = Instant::now();
    let mut hub: Hub<u32> = Hub::new(limits(8, 1, 100));
    for i in 0..10 {
        publish(&mut hub, &format!("c{i}"), "x", t0);
    }
    let later = t0 + secs(1);
    assert_eq!(hub.expire(later, 3), 3);
    assert_eq!(hub.stats().channels, 7);
    assert_eq!(hub.expire(later, 100), 7);
    assert_eq!(hub.stats().channels, 0);
    assert_eq!(hub.expire(later, 100), 0);
}

#[test]
fn a_channel_is_looked_at_once_per_expiry_however_often_it_publishes() {
    let t0 = Instant::now();
    let mut hub: Hub<u32> = Hub::new(limits(4, 10, 100));
    for i in 0..1000 {
        publish(&mut hub, "busy", "x", t0 + Duration::from_millis(i));
    }
    assert_eq!(hub.expiry.len(), 1);
    // Its oldest kept message (the 997th) sets the next look.
    assert_eq!(hub.expire(t0 + secs(10), usize::MAX), 1);
    assert_eq!(
        hub.next_expiry(),
        Some(t0 + Duration::from_millis(996) + secs(10))
    );
}

#[test]
fn memory_of_removed_channels_is_given_back() {
    let t0 = Instant::now();
    let mut hub: Hub<u32> = Hub::new(limits(4, 1, 1_000_000));
    for i in 0..50_000 {
        publish(&mut hub, &format!("user-{i}"), "hello", t0);
    }
    assert!(hub.channels.capacity() >= 50_000);
    hub.expire(t0 + secs(1), usize::MAX);
    assert_eq!(hub.stats().channels, 0);
    assert!(hub.channels.capacity() <= 64, "{}", hub.channels.capacity());
    assert!(hub.expiry.capacity() <= 64, "{}", hub.expiry.capacity());
}

fn numbered(id: u64, at: Instant) -> Numbered {
    Numbered {
        id,
        data: format!("m{id}").into(),
        at,
    }
}

#[test]
fn a_mirror_keeps_the_brokers_ids_and_stays_a_run() {
    let t0 = Instant::now();
    let mut hub: Hub<u32> = Hub::with_backlog(4);
    hub.reserve("a", t0).unwrap();
    hub.pin("a");
    // A first follow: the broker's backlog 7..=9 of 9.
    let kept = hub
        .replace("a", (7..=9).map(|id| numbered(id, t0)).collect(), 9, t0)
        .unwrap();
    assert_eq!(kept.iter().map(|m| m.id()).collect::<Vec<_>>(), [7, 8, 9]);
    let r = subscribe(&mut hub, "a", Some(0), 1, t0);
    assert_eq!((ids(&r), r.missed, r.last_id), (vec![7, 8, 9], 6, 9));
    // Live messages: a copy is dropped, the next is handed to the group.
    assert!(hub.deliver("a", numbered(9, t0), t0).unwrap().is_none());
    let p = hub.deliver("a", numbered(10, t0), t0).unwrap().unwrap();
    assert_eq!((p.message.id(), p.groups, p.subscribers), (10, vec![1], 1));
    // A skip (11..=13 left the broker's backlog unread): the backlog
    // restarts at 14, so a since before the skip is told what it missed.
    hub.deliver("a", numbered(14, t0), t0).unwrap().unwrap();
    let r = subscribe(&mut hub, "a", Some(9), 2, t0);
    assert_eq!((ids(&r), r.missed, r.last_id), (vec![14], 4, 14));
    assert_eq!(hub.subscribers_of("a"), 2);
    assert_eq!(hub.groups("a"), vec![1, 2]);
    // A read with nothing left in it still moves the ids on.
    hub.replace("a", vec![], 20, t0).unwrap();
    let r = subscribe(&mut hub, "a", Some(14), 2, t0);
    assert_eq!((ids(&r), r.missed, r.last_id), (vec![], 6, 20));
    // The broker lost its data: ids from 1 again.
    hub.replace("a", vec![numbered(1, t0)], 1, t0).unwrap();
    assert_eq!(hub.last_id("a"), 1);
}

#[test]
fn a_pinned_mirror_outlives_its_subscribers_and_ages_by_the_brokers_time() {
    let t0 = Instant::now();
    let mut hub: Hub<u32> = Hub::new(limits(8, 60, 10));
    hub.reserve("a", t0).unwrap();
    hub.pin("a");
    assert!(hub.is_pinned("a"));
    // Taken by the broker 50 s before this node read it: 10 s left.
    hub.replace("a", vec![numbered(1, t0)], 1, t0 + secs(50))
        .unwrap();
    subscribe(&mut hub, "a", None, 1, t0 + secs(50));
    hub.unsubscribe("a", &1, t0 + secs(50));
    assert_eq!(hub.stats().channels, 1, "pinned");
    hub.expire(t0 + secs(61), 16);
    assert_eq!(hub.stats().channels, 1, "pinned, with nothing left");
    let r = subscribe(&mut hub, "a", Some(0), 1, t0 + secs(61));
    assert_eq!((ids(&r), r.missed, r.last_id), (vec![], 1, 1));
    hub.unsubscribe("a", &1, t0 + secs(61));
    hub.unpin("a", t0 + secs(62));
    assert!(!hub.is_pinned("a"));
    assert_eq!(hub.stats().channels, 0, "unpinned with nothing left: gone");
    // Past the channel limit, nothing is reserved.
    let mut small: Hub<u32> = Hub::new(limits(8, 60, 1));
    small.reserve("x", t0).unwrap();
    assert_eq!(small.reserve("y", t0), Err(ChannelLimit));
}
