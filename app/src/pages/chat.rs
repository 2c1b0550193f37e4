//! The Chat page: a manager starts or resumes a conversation about a site, answers the
//! assistant's questions, requests a recommendation and submits the accepted changes.
//!
//! Without a `c` parameter the page shows the start form and the manager's conversations. With
//! one it shows that conversation. In the browser an `EventSource` on the conversation's REST
//! event stream reloads the view whenever a message, a state move or a run step arrives, so
//! replies and progress appear without a reload. The start and message forms are
//! `ActionForm`s and work before hydration.

use std::collections::HashSet;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_query_map};

use super::change_parts::error_text;
use super::require_role;
use crate::account::CurrentUser;
use crate::chat::{
    list_my_chats, load_chat, CancelChat, ChatMessage, ChatSummary, ChatView, CitationChip,
    EscalateChat, ProposalCard, RecommendNow, RunCard, SendChatMessage, StartChat, SubmitProposal,
    CHAT_PATH, MAX_MESSAGE_CHARS, MAX_REASON_CHARS,
};

/// Delay between an event and the reload it causes, so a burst of events reloads once.
#[cfg(feature = "hydrate")]
const RELOAD_DELAY_MS: u64 = 150;

/// The Chat page for facility managers.
#[component]
pub fn ChatPage() -> impl IntoView {
    let params = use_query_map();
    let conversation = Memo::new(move |_| {
        params.with(|params| params.get("c").filter(|id| !id.trim().is_empty()))
    });
    // Approvers open escalated conversations from their notifications, read-only; only
    // managers start and write conversations.
    let is_manager = use_context::<CurrentUser>().is_some_and(|user| user.has("manager"));
    let content = move || match conversation.get() {
        Some(id) => view! { <ChatRoom id is_manager /> }.into_any(),
        None => require_role("manager", view! { <StartPanel /> }).into_any(),
    };
    view! {
        <Title text="Chat · Siteline" />
        {content}
    }
}

/// Renders the start form and the manager's conversations.
#[component]
fn StartPanel() -> impl IntoView {
    let start = ServerAction::<StartChat>::new();
    let chats = Resource::new(|| (), |()| list_my_chats());
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(id)) = start.value().get() {
            navigate(&format!("{CHAT_PATH}?c={id}"), Default::default());
        }
    });
    let error = move || start.value().get().and_then(Result::err).map(error_text);
    view! {
        <h1>"Chat"</h1>
        <p class="chat-lede">
            "Describe a site in your own words. The assistant asks for what is missing, then proposes a configuration grounded in the published knowledge base."
        </p>
        <section class="chat-start" aria-labelledby="chat-start-heading">
            <h2 id="chat-start-heading">"Start a conversation"</h2>
            <ActionForm action=start attr:class="chat-start-form">
                <label for="chat-site">"Site code"</label>
                <input
                    id="chat-site"
                    name="site_code"
                    required
                    maxlength="32"
                    placeholder="e.g. WH-NAGPUR-01"
                    autocomplete="off"
                    data-testid="chat-site-code"
                />
                <fieldset class="chat-kind">
                    <legend>"The site is"</legend>
                    <label>
                        <input type="radio" name="conversation_type" value="new_site" checked />
                        " new: set it up"
                    </label>
                    <label>
                        <input type="radio" name="conversation_type" value="update_site" />
                        " existing: change it"
                    </label>
                </fieldset>
                <button type="submit" class="button" data-testid="chat-start">
                    {move || if start.pending().get() { "Starting…" } else { "Start or resume" }}
                </button>
                <p class="field-error" role="alert" aria-live="assertive" data-testid="chat-start-error">
                    {error}
                </p>
            </ActionForm>
        </section>
        <section class="chat-list" aria-labelledby="chat-list-heading">
            <h2 id="chat-list-heading">"Your conversations"</h2>
            <Transition fallback=|| view! { <p class="page-status">"Loading your conversations…"</p> }>
                {move || Suspend::new(async move {
                    match chats.await {
                        Ok(rows) if rows.is_empty() => view! {
                            <div class="empty-state" data-testid="chat-list-empty">
                                <p>"No conversations yet. Enter a site code above to start the first one."</p>
                            </div>
                        }
                        .into_any(),
                        Ok(rows) => view! { <ChatList rows /> }.into_any(),
                        Err(error) => view! {
                            <div class="error-panel" role="alert">
                                <h3>"Your conversations could not be loaded"</h3>
                                <p>{error_text(error)}</p>
                                <p>"Reload the page to try again."</p>
                            </div>
                        }
                        .into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn ChatList(rows: Vec<ChatSummary>) -> impl IntoView {
    let items = rows
        .into_iter()
        .map(|row| {
            let href = format!("{CHAT_PATH}?c={}", row.id);
            let class = if row.active { "badge badge-chat-active" } else { "badge" };
            view! {
                <li class="chat-list-row" data-testid="chat-list-row">
                    <A href=href>{row.site_code}</A>
                    <span class="kb-muted">{format!(" {} · started {}", row.kind, row.created_at)}</span>
                    <span class=class>{row.state_label}</span>
                </li>
            }
        })
        .collect_view();
    view! { <ul class="chat-list-rows">{items}</ul> }
}

/// Renders one conversation: header with state and progress, facts, messages, the composer and the
/// proposal.
#[component]
fn ChatRoom(id: String, is_manager: bool) -> impl IntoView {
    let tick = RwSignal::new(0u64);
    let chat_id = id.clone();
    let chat = Resource::new(move || tick.get(), move |_| load_chat(chat_id.clone()));
    listen_for_events(&id, tick);

    let send = ServerAction::<SendChatMessage>::new();
    let recommend = ServerAction::<RecommendNow>::new();
    let cancel = ServerAction::<CancelChat>::new();
    let escalate = ServerAction::<EscalateChat>::new();
    let submit = ServerAction::<SubmitProposal>::new();
    // A finished action changes what the server holds; reload rather than wait for an event.
    Effect::new(move |_| {
        let finished = [
            send.version().get(),
            recommend.version().get(),
            cancel.version().get(),
            escalate.version().get(),
        ];
        if finished.iter().any(|version| *version > 0) {
            tick.update(|count| *count += 1);
        }
    });
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(change_set)) = submit.value().get() {
            navigate(&format!("/changes/{change_set}"), Default::default());
        }
    });
    let declined = RwSignal::new(HashSet::<String>::new());

    view! {
        <p class="chat-back"><A href=CHAT_PATH>"← All conversations"</A></p>
        <Transition fallback=|| view! { <p class="page-status" role="status">"Loading the conversation…"</p> }>
            {move || Suspend::new(async move {
                match chat.await {
                    Ok(view) => view! {
                        <ChatBody view recommend cancel escalate submit declined is_manager />
                    }
                    .into_any(),
                    Err(error) => view! {
                        <div class="error-panel" role="alert" data-testid="chat-error">
                            <h1>"The conversation could not be loaded"</h1>
                            <p>{error_text(error)}</p>
                            <p>"Check the address, or open the conversation from the Chat page."</p>
                        </div>
                    }
                    .into_any(),
                }
            })}
        </Transition>
        {is_manager.then(|| view! { <Composer id send /> })}
    }
}

#[component]
fn ChatBody(
    view: ChatView,
    recommend: ServerAction<RecommendNow>,
    cancel: ServerAction<CancelChat>,
    escalate: ServerAction<EscalateChat>,
    submit: ServerAction<SubmitProposal>,
    declined: RwSignal<HashSet<String>>,
    is_manager: bool,
) -> impl IntoView {
    let ChatView {
        id,
        site_code,
        kind,
        state,
        state_label,
        progress,
        active,
        can_send,
        can_recommend,
        facts,
        messages,
        run,
    } = view;
    let can_recommend = can_recommend && is_manager;
    let active = active && is_manager;
    let facts_view = (!facts.is_empty()).then(|| {
        let rows = facts
            .into_iter()
            .map(|(label, value)| view! { <dt>{label}</dt><dd>{value}</dd> })
            .collect_view();
        view! {
            <details class="chat-facts" open>
                <summary>"What the assistant knows"</summary>
                <dl data-testid="chat-facts">{rows}</dl>
            </details>
        }
    });
    let awaiting = state == "awaiting_user_approval" && is_manager;
    let recommend_error = move || {
        recommend
            .value()
            .get()
            .and_then(Result::err)
            .map(error_text)
    };
    let cancel_error = move || cancel.value().get().and_then(Result::err).map(error_text);
    let escalate_error = move || escalate.value().get().and_then(Result::err).map(error_text);
    let closed_note = (!can_send).then(|| {
        let text = match state.as_str() {
            "generating_recommendations" => "The assistant is preparing the proposal; messages can be sent again if you go back to questions.",
            "awaiting_user_approval" => "The proposal is ready below. Accept or decline each change, then submit.",
            _ => "This conversation is closed. Start a new one from the Chat page.",
        };
        view! { <p class="chat-note" data-testid="chat-closed-note">{text}</p> }
    });

    view! {
        <header class="chat-header">
            <h1>{format!("Chat: {site_code}")}</h1>
            <p class="kb-muted">{kind}</p>
            <div class="chat-state" role="status" aria-live="polite" data-testid="chat-state" data-state=state.clone()>
                <span class="chat-state-label" data-testid="chat-state-label">{state_label.clone()}</span>
                {progress.map(|percent| view! {
                    <progress max="100" value=percent.to_string() aria-label=state_label.clone() data-testid="chat-progress">
                        {format!("{percent}%")}
                    </progress>
                    <span class="kb-muted">{format!("{percent}%")}</span>
                })}
            </div>
        </header>
        {facts_view}
        <ol class="chat-messages" aria-label="Messages" data-testid="chat-messages">
            {messages.into_iter().map(|message| view! { <MessageBubble message /> }).collect_view()}
        </ol>
        {closed_note}
        <div class="chat-actions">
            {can_recommend.then(|| {
                let id = id.clone();
                view! {
                    <ActionForm action=recommend attr:class="chat-inline-form">
                        <input type="hidden" name="id" value=id />
                        <button type="submit" class="button" data-testid="chat-recommend">
                            {move || if recommend.pending().get() { "Asking…" } else { "Recommend now" }}
                        </button>
                    </ActionForm>
                }
            })}
            {active.then(|| {
                let id = id.clone();
                view! {
                    <ActionForm action=cancel attr:class="chat-inline-form">
                        <input type="hidden" name="id" value=id />
                        <button type="submit" class="button secondary" data-testid="chat-cancel">"Cancel conversation"</button>
                    </ActionForm>
                }
            })}
            <p class="field-error" role="alert" aria-live="assertive">{recommend_error}{cancel_error}{escalate_error}</p>
        </div>
        {active.then(|| {
            let id = id.clone();
            view! {
                <details class="chat-escalate">
                    <summary>"Ask an approver for help"</summary>
                    <ActionForm action=escalate attr:class="chat-escalate-form">
                        <input type="hidden" name="id" value=id />
                        <label for="chat-reason">"What do you need help with? (optional)"</label>
                        <input id="chat-reason" name="reason" maxlength=MAX_REASON_CHARS.to_string() data-testid="chat-escalate-reason" />
                        <p class="kb-muted">"The conversation stops, and the tenant's approvers are notified."</p>
                        <button type="submit" class="button secondary" data-testid="chat-escalate">"Escalate"</button>
                    </ActionForm>
                </details>
            }
        })}
        {run.map(|run| view! { <Proposal run submit declined can_submit=awaiting /> })}
    }
}

#[component]
fn MessageBubble(message: ChatMessage) -> impl IntoView {
    let class = format!("chat-message chat-message-{}", message.role);
    let who = if message.role == "user" {
        "You"
    } else {
        "Assistant"
    };
    let flags = message
        .flags
        .into_iter()
        .map(|flag| view! { <span class="badge badge-flag" data-testid="message-flag">{flag}</span> })
        .collect_view();
    view! {
        <li class=class data-testid="chat-message" data-role=message.role.clone()>
            <p class="chat-message-meta">{format!("{who} · {}", message.time)}</p>
            {flags}
            <p class="chat-message-text">{message.text}</p>
        </li>
    }
}

/// Renders the message box. It stays outside the reloading view, so a reply arriving while the manager
/// types keeps the draft and the focus.
#[component]
fn Composer(id: String, send: ServerAction<SendChatMessage>) -> impl IntoView {
    let draft = RwSignal::new(String::new());
    Effect::new(move |_| {
        if let Some(Ok(())) = send.value().get() {
            draft.set(String::new());
        }
    });
    let error = move || send.value().get().and_then(Result::err).map(error_text);
    view! {
        <ActionForm action=send attr:class="chat-composer">
            <input type="hidden" name="id" value=id />
            <label for="chat-text">"Your message"</label>
            <textarea
                id="chat-text"
                name="text"
                rows="3"
                required
                maxlength=MAX_MESSAGE_CHARS.to_string()
                placeholder="e.g. A 24/7 warehouse in Nagpur with about 180 staff and HIGH security"
                prop:value=move || draft.get()
                on:input=move |event| draft.set(event_target_value(&event))
                data-testid="chat-input"
            ></textarea>
            <button type="submit" class="button" disabled=move || send.pending().get() data-testid="chat-send">
                {move || if send.pending().get() { "Sending…" } else { "Send" }}
            </button>
            <p class="field-error" role="alert" aria-live="assertive" data-testid="chat-send-error">{error}</p>
        </ActionForm>
    }
}

/// Renders the newest run: its progress while it works, its proposal cards when done.
#[component]
fn Proposal(
    run: RunCard,
    submit: ServerAction<SubmitProposal>,
    declined: RwSignal<HashSet<String>>,
    can_submit: bool,
) -> impl IntoView {
    let RunCard {
        id: run_id,
        status,
        stage_label,
        progress,
        decision,
        confidence,
        notes,
        error,
        sources,
        items,
    } = run;
    if status == "running" {
        return view! {
            <section class="chat-proposal" aria-label="Proposal" data-testid="chat-run">
                <h2>"Proposal"</h2>
                <p>{format!("{stage_label} ({progress}%)")}</p>
            </section>
        }
        .into_any();
    }
    if status == "failed" {
        return view! {
            <section class="chat-proposal error-panel" role="alert" data-testid="chat-run-failed">
                <h2>"The proposal could not be prepared"</h2>
                <p>{error.unwrap_or_default()}</p>
                <p>"An approver has been told. You can start a new conversation for this site."</p>
            </section>
        }
        .into_any();
    }

    let item_ids: Vec<String> = items.iter().map(|item| item.id.clone()).collect();
    let all_ids = item_ids.clone();
    let accepted_count = Memo::new(move |_| {
        declined.with(|declined| item_ids.iter().filter(|id| !declined.contains(*id)).count())
    });
    let submit_run = run_id.clone();
    let on_submit = move |_| {
        let accepted: Vec<String> = declined.with(|declined| {
            all_ids
                .iter()
                .filter(|id| !declined.contains(*id))
                .cloned()
                .collect()
        });
        submit.dispatch(SubmitProposal {
            run_id: submit_run.clone(),
            accepted,
        });
    };
    let submit_error = move || submit.value().get().and_then(Result::err).map(error_text);
    let cards = items
        .into_iter()
        .map(|item| view! { <ProposalItem item declined can_submit /> })
        .collect_view();
    let notes = notes
        .into_iter()
        .map(|note| view! { <li>{note}</li> })
        .collect_view();
    view! {
        <section class="chat-proposal" aria-labelledby="chat-proposal-heading" data-testid="chat-proposal">
            <h2 id="chat-proposal-heading">"Proposal"</h2>
            <p class="chat-decision">
                {decision.unwrap_or_default()}
                {confidence.map(|percent| format!(" · confidence {percent}%"))}
            </p>
            <p class="chat-sources" data-testid="chat-run-sources">{sources.join(" ")}</p>
            <ul class="chat-notes" data-testid="chat-run-notes">{notes}</ul>
            <ol class="chat-cards">{cards}</ol>
            {can_submit.then(|| view! {
                <div class="chat-submit">
                    <button
                        type="button"
                        class="button"
                        data-testid="chat-submit"
                        disabled=move || accepted_count.get() == 0 || submit.pending().get()
                        on:click=on_submit
                    >
                        {move || format!("Submit {} changes", accepted_count.get())}
                    </button>
                    <p class="kb-muted">"Submitted changes go to approvers; nothing changes until the change set is applied."</p>
                    <p class="field-error" role="alert" aria-live="assertive" data-testid="chat-submit-error">{submit_error}</p>
                </div>
            })}
        </section>
    }
    .into_any()
}

#[component]
fn ProposalItem(
    item: ProposalCard,
    declined: RwSignal<HashSet<String>>,
    can_submit: bool,
) -> impl IntoView {
    let ProposalCard {
        id,
        summary,
        action,
        fields,
        rationale,
        confidence,
        citations,
        findings,
    } = item;
    let toggle_id = id.clone();
    let checked_id = id.clone();
    let accepted = move || declined.with(|declined| !declined.contains(&checked_id));
    let fields = (!fields.is_empty()).then(|| {
        let rows = fields
            .into_iter()
            .map(|(name, value)| view! { <dt>{name}</dt><dd>{value}</dd> })
            .collect_view();
        view! { <dl class="chat-fields">{rows}</dl> }
    });
    let citations_view = if citations.is_empty() {
        view! { <p class="kb-muted">"No citation."</p> }.into_any()
    } else {
        citations
            .into_iter()
            .map(|citation| view! { <Citation citation /> })
            .collect_view()
            .into_any()
    };
    let findings = findings
        .into_iter()
        .map(|finding| {
            let class = if finding.passed { "chat-finding-pass" } else { "chat-finding-fail" };
            let mark = if finding.passed { "Passed" } else { "Failed" };
            view! { <li class=class>{format!("{mark} · {}: {}", finding.category, finding.message)}</li> }
        })
        .collect_view();
    let input_id = format!("accept-{id}");
    view! {
        <li class=format!("chat-card chat-card-{action}") data-testid="proposal-item">
            <h3>{summary}</h3>
            {fields}
            <p>{rationale}</p>
            <div class="chat-confidence">
                <span>{format!("Confidence {confidence}%")}</span>
                <meter min="0" max="100" value=confidence.to_string() aria-label="Confidence"></meter>
            </div>
            <div class="chat-citations" data-testid="proposal-citations">{citations_view}</div>
            <ul class="chat-findings">{findings}</ul>
            {can_submit.then(|| view! {
                <label class="chat-accept" for=input_id.clone()>
                    <input
                        id=input_id.clone()
                        type="checkbox"
                        prop:checked=accepted
                        on:change=move |_| {
                            let id = toggle_id.clone();
                            declined.update(|declined| {
                                if !declined.remove(&id) {
                                    declined.insert(id);
                                }
                            });
                        }
                        data-testid="proposal-accept"
                    />
                    " Accept this change"
                </label>
            })}
        </li>
    }
}

/// Renders a citation chip that opens the quoted passage. `<details>` works without JavaScript and
/// with the keyboard.
#[component]
fn Citation(citation: CitationChip) -> impl IntoView {
    let label = if citation.section.is_empty() {
        citation.title.clone()
    } else {
        format!("{} · {}", citation.title, citation.section)
    };
    view! {
        <details class="chat-citation" data-testid="citation" data-chunk=citation.chunk_id>
            <summary class="chip">{label}</summary>
            <blockquote data-testid="citation-quote">{citation.quote}</blockquote>
        </details>
    }
}

/// Reloads the view when the conversation's event stream reports a change. The stream is
/// opened only in the browser and closed when the page goes away.
#[cfg(feature = "hydrate")]
fn listen_for_events(id: &str, tick: RwSignal<u64>) {
    use std::cell::Cell;
    use std::rc::Rc;
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;

    let url = format!("/api/v1/conversations/{id}/events");
    Effect::new(move |_| {
        let source = match web_sys::EventSource::new(&url) {
            Ok(source) => source,
            Err(error) => {
                leptos::logging::error!("the conversation event stream did not open: {error:?}");
                return;
            }
        };
        // A burst of events (every message is one when the stream opens) reloads once.
        let scheduled = Rc::new(Cell::new(false));
        let on_event = Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |_| {
            if scheduled.replace(true) {
                return;
            }
            let scheduled = scheduled.clone();
            set_timeout(
                move || {
                    scheduled.set(false);
                    tick.update(|count| *count += 1);
                },
                std::time::Duration::from_millis(RELOAD_DELAY_MS),
            );
        });
        for name in ["message", "state", "run"] {
            let _ =
                source.add_event_listener_with_callback(name, on_event.as_ref().unchecked_ref());
        }
        let source = send_wrapper::SendWrapper::new(source);
        let on_event = send_wrapper::SendWrapper::new(on_event);
        on_cleanup(move || {
            source.close();
            drop(on_event);
        });
    });
}

/// Does nothing on the server, which renders the current view; only the browser listens.
#[cfg(not(feature = "hydrate"))]
fn listen_for_events(_id: &str, _tick: RwSignal<u64>) {}
