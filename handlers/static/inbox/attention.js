// What tells an agent that something needs them while they look elsewhere: the
// unread count of their open conversations in the tab's title and, when they ask
// for them, a desktop notification and a short sound for a new message in one.

const TITLE = document.title;

export class Attention {
  constructor() {
    this.unread = new Map(); // my open conversations' ids → what I have not read
    this.notify = false;
    this.sound = false;
    this.audio = null;
  }

  reset() {
    this.unread.clear();
    this.render();
  }

  // A conversation as the page saw it (a list, an event, an answer); true when it
  // has more for me to read than before: news.
  seen(conversation, me, unreadBy) {
    const before = this.unread.get(conversation.id) || 0;
    const mine = conversation.assignee_id === me && conversation.status === "open";
    const now = mine ? unreadBy(conversation, me) : 0;
    if (now) this.unread.set(conversation.id, now);
    else this.unread.delete(conversation.id);
    this.render();
    return now > before;
  }

  render() {
    let total = 0;
    for (const count of this.unread.values()) total += count;
    document.title = total ? `(${total}) ${TITLE}` : TITLE;
  }

  // The agent switched notifications on (a click: the browser asks only then).
  async enableNotifications() {
    const answer = await Notification.requestPermission();
    this.notify = answer === "granted";
    return this.notify;
  }

  enableSound(on) {
    this.sound = on;
    if (on && !this.audio) this.audio = new AudioContext(); // made in the click
  }

  // `looking`: the agent has this conversation open in front of them: nothing to tell.
  alert(title, body, looking) {
    if (looking) return;
    if (this.notify && Notification.permission === "granted") new Notification(title, { body });
    if (this.sound && this.audio) beep(this.audio);
  }
}

function beep(audio) {
  const tone = audio.createOscillator();
  const level = audio.createGain();
  tone.frequency.value = 880;
  level.gain.setValueAtTime(0.15, audio.currentTime);
  level.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.25);
  tone.connect(level).connect(audio.destination);
  tone.start();
  tone.stop(audio.currentTime + 0.25);
}
