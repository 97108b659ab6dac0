"""The language server: documents, settings, the engine, and each document's in-flight job.

Requests (besides the standard ones):

    textDocument/inlineCompletion  -> InlineCompletionList           fill-in-the-middle at the cursor
    diffusion/infill    {textDocument, ranges?: Range[], position?: Position}
                        -> {edits: TextEdit[], kept: [{range, reason}], version}   several holes, a canvas each;
                                                                    `kept`: holes whose fill the guard refused
    diffusion/rewrite   {textDocument, range, mode?: "regenerate"|"refine", instruction?}
                        -> {edit: TextEdit | null, version, reason: string | null}   null: refused, and why
    diffusion/status    -> {backend, model, device, steppable, capabilities, languages, loaded, error?,
                            lastLatencyMs, lastRefused, tokensPerForward, nfe, memoryEstimateGiB?, memoryFormat?, ...}

Every edit passes the guard (infill.guard, applied in fill.run): one that would add parse errors, delete a selection
or placeholder without replacement, or change nothing is not returned; the reason is.
    workspace/executeCommand "diffusion.rewrite" [rewrite params]   rewrites and applies with workspace/applyEdit

While a fill denoises, every forward sends a notification

    diffusion/canvas    {uri, version, id, step, nfe, block, range, text, masks, remasked, done}

`id` is the request's JSON-RPC id; `step` counts this request's notifications (1, 2, ...); `range` is the document
range the fill replaces; `text` its text so far with each masked slot as "·"; `masks` the [start, end) ranges of
`text` still masked (UTF-16 code units, like LSP positions). The last one has done=true and equals the result; it
carries `reason` when the guard refused the result (its text is then the document's own), `cut` ("limit",
"repetition") when a growing fill was stopped before the model ended it, and `ms`, the server's own time for the
request.
Nothing is sent for a request after it was cancelled, superseded, or its document changed. A backend that is not
steppable (vLLM runs its own loop) sends one per committed canvas instead, with no masks: its fill so far. With the
`canvasDelayMs` setting the engine waits that long after each intermediate canvas before it goes on (a stream slow
enough to watch: demos, editor tests; a cancel ends the wait).

The `backend` setting picks the model: embedded (shipped), transformers (DiffusionGemma from modelPath), vllm (in
process), vllm-remote (serverUrl; the API key from the DIFFUSION_LS_API_KEY environment variable) or mercury
(Inception's hosted API; the key from INCEPTION_API_KEY).
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from lsprotocol import types
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer

from engine.sampler import Cancelled, SampleStats
from infill.document import Document, PositionError
from server import fill, logs
from server.config import NATIVE, SECTION, Settings, parse_settings
from server.jobs import Job, Jobs, Worker
from server.protocol import DiffusionProtocol
from server.workspace import RESCAN_S, Workspace

__version__ = "0.1.0"
log = logs.log

CANVAS = "diffusion/canvas"
INFILL = "diffusion/infill"
REWRITE = "diffusion/rewrite"
STATUS = "diffusion/status"
REWRITE_COMMAND = "diffusion.rewrite"
REQUEST_FAILED = types.LSPErrorCodes.RequestFailed
RECENT = 4  # inline completions kept per document for typed_ahead: a typo typed and deleted finds its own again
RATED_AS = {"tsx": "typescript"}  # a dialect takes its language's measured rating
RECENT_MAX_CHARS = 2_000_000  # a document larger than this keeps none (each one holds a copy of its text)


# -- custom request params ---------------------------------------------------------------------------------------------


class _Params(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Pos(_Params):
    line: int
    character: int


class Rng(_Params):
    start: Pos
    end: Pos


class DocRef(_Params):
    uri: str


class InfillParams(_Params):
    text_document: DocRef
    ranges: list[Rng] | None = None
    position: Pos | None = None


class RewriteParams(_Params):
    text_document: DocRef
    range: Rng
    mode: Literal["regenerate", "refine"] = "regenerate"
    instruction: str | None = None


def _plain(obj: Any) -> Any:
    """pygls hands custom params over as namedtuples: back to dicts and lists."""
    if hasattr(obj, "_asdict"):
        return {k: _plain(v) for k, v in obj._asdict().items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _parse(model: type[BaseModel], params: Any) -> Any:
    try:
        return model.model_validate(_plain(params))
    except ValidationError as exc:
        raise JsonRpcInvalidParams(message=f"invalid params: {exc}") from None


def _utf16(text: str, offsets: list[tuple[int, int]]) -> list[list[int]]:
    """Char ranges of text as UTF-16 code unit ranges."""
    if all(ord(c) <= 0xFFFF for c in text):
        return [[a, b] for a, b in offsets]
    units = [0]
    for c in text:
        units.append(units[-1] + (2 if ord(c) > 0xFFFF else 1))
    return [[units[a], units[b]] for a, b in offsets]


class BackendUnavailable(Exception):
    """The model could not be loaded; the message says what to do."""


# -- the server --------------------------------------------------------------------------------------------------------


class DiffusionLanguageServer(LanguageServer):
    """Owns the open documents, the settings, the loaded backend and the in-flight job of each document."""

    def __init__(self) -> None:
        super().__init__("diffusion-ls", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
                         protocol_cls=DiffusionProtocol)
        self.documents: dict[str, Document] = {}
        self.out_of_sync: dict[str, str] = {}  # uri -> why: a change did not apply, so no fills until reopened
        self.language_ids: dict[str, str] = {}
        self.settings = Settings()
        self.backend: Any = None
        self.backend_error: str | None = None
        self.settings_problems: list[str] = []
        self._load: asyncio.Future | None = None
        self._load_key: tuple | None = None
        self.worker = Worker(hold=lambda: self.repo.hold())  # indexing waits while the engine works
        self.jobs = Jobs()
        self.last: dict[str, Any] = {"lastLatencyMs": None, "tokensPerForward": None, "nfe": None}
        # per document, its last few inline completions, newest first: (settings, backend, text, cursor, completion)
        self.recent: dict[str, list[tuple[Settings, Any, str, int, str]]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ratings: tuple[Any, dict[str, str]] = (None, {})  # (backend, its model's ratings per language)
        self.shutdown_requested = False
        self.repo = Workspace()  # open / recent chunks and the background index: repository context
        self.repo.on_progress = self.on_index_progress
        self.roots: list[Path] = []  # workspaceFolders (or rootUri) as paths
        self.repo_last: dict | None = None  # the last fill's repository context, for diffusion/status
        self._index_runs = 0
        self._index_token = ""
        self._index_ready = asyncio.Event()

    # -- documents ----------------------------------------------------------------------------------------------------

    def document(self, uri: str) -> Document:
        doc = self.documents.get(uri)
        if doc is None:
            raise JsonRpcInvalidParams(message=f"document {uri} is not open (send textDocument/didOpen first)")
        if uri in self.out_of_sync:
            raise JsonRpcException(message=f"{uri} is out of sync with the editor ({self.out_of_sync[uri]}): close and "
                                   "reopen it", code=REQUEST_FAILED)
        return doc

    def change_not_applied(self, uri: Any, version: Any, why: str) -> None:
        """A didChange that could not be read: the document no longer matches the editor's; its fill is outdated."""
        log.error("didChange for %s could not be read (%s); close and reopen it", uri, why)
        if isinstance(uri, str) and uri in self.documents:
            self.jobs.cancel(uri, "modified")
            self.out_of_sync[uri] = "a change could not be read"
            if isinstance(version, int):
                self.documents[uri].version = version

    @staticmethod
    def offset(doc: Document, position: Any) -> int:
        try:
            return doc.offset_at(position)
        except PositionError as exc:
            raise JsonRpcInvalidParams(
                message=f"position {position.line}:{position.character} is outside {doc.uri}: {exc}") from None

    @staticmethod
    def range_offsets(doc: Document, rng: Any) -> tuple[int, int]:
        try:
            return doc.range_offsets(rng)
        except PositionError as exc:
            raise JsonRpcInvalidParams(message=f"range is outside {doc.uri}: {exc}") from None

    @staticmethod
    def lsp_range(doc: Document, start: int, end: int) -> types.Range:
        a, b = doc.position_at(start), doc.position_at(end)
        return types.Range(types.Position(a.line, a.character), types.Position(b.line, b.character))

    def enabled(self, doc: Document) -> bool:
        return self.settings.allows(self.language_ids.get(doc.uri), doc.language)

    def ratings(self) -> dict[str, str]:
        """The loaded model's measured quality per language ("good", "fair", "weak"; its languages.json), {} when it
        has none."""
        b = self.backend
        if b is None:
            return {}
        if self._ratings[0] is not b:
            self._ratings = (b, model_ratings(getattr(b, "model_dir", None)))
        return self._ratings[1]

    def completes_as_you_type(self, doc: Document, automatic: bool) -> bool:
        """Whether an inline completion is made here: the weakLanguages setting, for a language the model is weak at."""
        if self.ratings().get(RATED_AS.get(doc.language or "", doc.language or "")) != "weak":
            return True
        mode = self.settings.weak_languages
        return mode == "automatic" or mode == "explicit" and not automatic

    def typed_ahead(self, uri: str, text: str, offset: int) -> str | None:
        """The rest of one of the document's last inline completions, when the text differs from the one it was made
        for only by the start of it, typed at its cursor (editors ask again at every keystroke), or not at all (a
        typo typed and deleted, the same place asked again): nothing to denoise again. None when anything else
        changed, the settings or the model included."""
        for settings, backend, old, at, insert in self.recent.get(uri, ()):
            n = offset - at
            if settings != self.settings or backend is not self.backend or not 0 <= n < len(insert):
                continue
            if len(text) == len(old) + n and text[at:offset] == insert[:n] and text[offset:] == old[at:] \
                    and text[:at] == old[:at]:
                return insert[n:]
        return None

    def remember(self, uri: str, text: str, offset: int, insert: str) -> None:
        """Keep a completion for typed_ahead (the last RECENT of each document)."""
        if len(text) > RECENT_MAX_CHARS:
            self.recent.pop(uri, None)
            return
        kept = [r for r in self.recent.get(uri, ()) if (r[2], r[3]) != (text, offset)]
        self.recent[uri] = [(self.settings, self.backend, text, offset, insert), *kept][:RECENT]

    # -- settings -----------------------------------------------------------------------------------------------------

    def apply_settings(self, raw: Any, base: Settings | None) -> None:
        """Validate and adopt settings; report each bad value (its default is used); reload the model if needed."""
        new, problems = parse_settings(raw, base)
        self.settings_problems = problems  # the current settings' bad values, for diffusion/status
        said = list(problems)
        old, self.settings = self.settings, new
        logs.set_level(new.log_level, new.log_file)
        if old != new:
            log.info("settings: %s", new.model_dump(by_alias=True, exclude_defaults=True) or "defaults")
            said += sorted(set(new.notes()) - set(old.notes()))  # said once, when it starts to apply
        for p in said:
            log.warning("settings: %s", p)
        if said:  # one message: an editor shows each as a toast or a prompt to dismiss (Neovim: "Press ENTER")
            self.window_show_message(types.ShowMessageParams(types.MessageType.Warning,
                                                             "diffusion-ls: " + "; ".join(said)))

    def reconfigure(self, raw: Any) -> None:
        """A settings change: a partial update of the current settings; reload the model if it depends on it."""
        self.apply_settings(raw, self.settings)
        if self.settings.backend_key() != self._load_key:
            self.start_loading()
        self.start_indexing()  # repository context turned on: index now (nothing happens when it runs already)

    async def pull_settings(self) -> None:
        """Ask the client for the `diffusion` section (workspace/configuration)."""
        try:
            got = await self.workspace_configuration_async(
                types.ConfigurationParams([types.ConfigurationItem(section=SECTION)]))
        except Exception as exc:  # a client that cannot answer keeps the current settings
            log.warning("workspace/configuration failed: %s", exc)
            return
        if got and got[0]:
            self.reconfigure(_plain(got[0]))

    # -- the backend --------------------------------------------------------------------------------------------------

    def start_loading(self) -> asyncio.Future:
        """Load the backend the settings name (on the engine thread), unless it is loaded or loading already."""
        key = self.settings.backend_key()
        if self._load is None or self._load_key != key:
            self._load_key = key
            self._load = asyncio.ensure_future(self._load_backend(self.settings))
            self._load.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved: no warning
        return self._load

    async def ensure_backend(self) -> Any:
        try:
            return await asyncio.shield(self.start_loading())
        except BackendUnavailable as exc:
            raise JsonRpcException(message=str(exc), code=REQUEST_FAILED) from None

    async def _load_backend(self, settings: Settings) -> Any:
        t0 = time.perf_counter()
        self.last = {"lastLatencyMs": None, "tokensPerForward": None, "nfe": None}  # the last fill was another model's
        try:
            backend = await self.worker.run(None, _open_backend, settings)
        except Exception as exc:  # ModelLoadError, a bad device, a broken file: the server stays up
            self.backend, self.backend_error = None, str(exc)
            why = str(exc).rstrip(". ")  # its own full stop, if any, is the sentence's
            msg = (f"diffusion-ls: could not load the model ({settings.backend} backend): {why}. Completion is off "
                   f"until this is fixed: {_load_hint(settings)}")
            log.error(msg)
            self.window_show_message(types.ShowMessageParams(types.MessageType.Error, msg))
            raise BackendUnavailable(msg) from exc
        old, self.backend, self.backend_error = self.backend, backend, None
        if old is not None and old is not backend and hasattr(old, "close"):  # a remote client's connections
            self.worker.submit(old.close)  # behind any job still running on it
        log.info("loaded %s model %s on %s in %.0f ms", backend.name, backend.model_name, backend.device,
                 (time.perf_counter() - t0) * 1e3)
        self.start_indexing()  # a model trained to read repository context turns it on (repoContextBudget unset)
        return backend

    # -- jobs ---------------------------------------------------------------------------------------------------------

    def is_current(self, job: Job) -> bool:
        """Still worth telling the client about: not cancelled, superseded, and its document version unchanged."""
        doc = self.documents.get(job.uri)
        return not job.stopped and doc is not None and doc.version == job.version

    def repo_ids(self, uri: str, text: str, at: int | None, target: Any, budget: int, context_budget: int
                 ) -> list[int]:
        """The repository context for a cursor (engine thread): documents edited elsewhere since the last fill are
        indexed and enter the ring first, then infill.repo_context lays out what server.workspace selects, the part
        of the document's own file that the file context (`context_budget` tokens) leaves out included."""
        self.repo_last = None
        path = _path(uri)
        if at is None or budget <= 0 or path is None or target.prompter is not None:
            return []
        docs = {}
        for u, d in list(self.documents.items()):  # a copy: the event loop edits the dict
            p = _path(u)
            if p is not None:
                docs[str(p)] = d.text
        self.repo.leave_others(path, docs)
        sel, ids, used = self.repo.context(path, text, at, docs, target, context_budget, budget)
        self.repo_last = {"tokens": len(ids), "selectMs": round(sel.ms, 2), "reused": sel.reused,
                          "indexing": self.repo.indexing,
                          "chunks": [{"path": c.path, "kind": c.kind, "line": c.line, "score": c.score, "text": c.text}
                                     for c in used]}
        return ids

    def repo_off(self, backend: Any) -> str | None:
        """Why no repository context is given (a client shows it), or None when it is."""
        if self.settings.repo_wanted(backend) > 0:
            return None
        if self.settings.repo_context_budget == 0:
            return "repoContextBudget is 0"
        if backend is None:
            return "the model did not load" if self.backend_error else "the model is not loaded yet"
        return (f"{getattr(backend, 'model_name', None) or 'the model'} was not trained to read it (set "
                f"repoContextBudget to try it anyway)")

    def start_indexing(self) -> None:
        """Index the workspace roots in the background (when repository context is on)."""
        if self.settings.repo_wanted(self.backend) > 0:
            self.repo.start()
            for root in self.roots:
                self.repo.add_root(root)

    async def register_quietly(self, params: types.RegistrationParams) -> None:
        """client/registerCapability; a client that refuses it only loses the updates it would have sent."""
        try:
            await self.client_register_capability_async(params)
        except Exception as exc:
            log.info("the client refused to watch files for the index (%s): the workspace is walked again every "
                     "%.0f s for files changed outside the editor", exc, RESCAN_S)
            self.repo.rescan_every(RESCAN_S)

    def on_index_progress(self, phase: str, done: int, total: int) -> None:
        """From the indexing thread: $/progress on the event loop (where the client accepts server-made progress)."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._index_progress(phase, done, total)))

    async def _index_progress(self, phase: str, done: int, total: int) -> None:
        caps = self.client_capabilities.window
        if caps is None or not caps.work_done_progress:
            return
        try:
            if phase == "begin":
                self._index_runs += 1
                self._index_token = f"diffusion-ls/index/{self._index_runs}"
                self._index_ready = asyncio.Event()
                await self.work_done_progress.create_async(self._index_token)
                self.work_done_progress.begin(self._index_token, types.WorkDoneProgressBegin(
                    "diffusion-ls: indexing", message=f"0/{total} files", percentage=0, cancellable=False))
                self._index_ready.set()
                return
            await self._index_ready.wait()
            pct = round(100 * done / total) if total else 100
            if phase == "report":
                self.work_done_progress.report(self._index_token, types.WorkDoneProgressReport(
                    message=f"{done}/{total} files", percentage=pct))
            else:
                self.work_done_progress.end(self._index_token, types.WorkDoneProgressEnd(message=f"{done} files"))
        except Exception as exc:  # a client that refuses progress: indexing goes on without it
            log.debug("indexing progress not shown: %s", exc)

    async def run_fill(self, doc: Document, kind: str, make_plan: Callable[[Any, int, int, list[int]], fill.Plan],
                       at: int | None = None, typing: bool = False,
                       shift: int = 0) -> tuple[Job, fill.Plan, fill.Outcome]:
        """Run a fill for doc's current version on the engine thread; raise if it stopped or the version changed.

        make_plan gets fill.target(backend) (the tokenizer, prompter and sizing to lay the plan out with) and the
        context budget and fill cap that fit the model (limits), and the repository context ids chosen for the cursor
        offset `at` (none without it); it must use a snapshot of the text taken before this call (no await between).
        `shift`: a plan made on the text with an edit of this many more chars before its span (the suggestion selected
        in the editor's list, for an inline completion): its canvases are drawn where the span is in the document.
        `typing`: a completion as you type, under Settings.as_you_type's limits.
        """
        snapshot = doc.text
        job = self.jobs.start(doc.uri, doc.version, self.protocol.msg_id, kind)
        t0 = time.perf_counter()
        try:
            backend = await self.ensure_backend()  # may wait for the model to load: edits meanwhile stop the job
        except BaseException:
            self.jobs.finish(job)
            raise
        budget, max_tokens, room = self.settings.limits(backend)
        rbudget = self.settings.repo_budget(backend)
        cfg = self.settings.sampler(backend=backend)
        cfg = replace(cfg, max_new=min(cfg.max_new, max_tokens))
        native = self.settings.strategy == NATIVE
        hold = self.settings.canvas_delay_ms / 1000
        limits = self.settings.as_you_type() if typing else {}
        loop = asyncio.get_running_loop()

        def on_partial(p: fill.Partial, span: tuple[int, int]) -> None:  # the engine thread, after each forward
            loop.call_soon_threadsafe(self._send_partial, job, span, p)
            if hold > 0:
                job.cancel_event.wait(hold)  # canvasDelayMs: the canvas stays up; a cancel ends the wait

        def work() -> tuple[fill.Plan, fill.Outcome]:  # the engine thread
            if job.cancel_event.is_set():
                raise Cancelled()
            try:
                target = fill.target(backend)
                repo = self.repo_ids(doc.uri, snapshot, at, target, rbudget, budget)
                plan = fill.fit(make_plan(target, budget, max_tokens, repo), target, room)
            except (ValueError, PositionError) as exc:  # nothing to fill there, a range the hole finder refuses
                raise JsonRpcInvalidParams(message=str(exc)) from None
            span = (plan.span[0] - shift, plan.span[1] - shift)  # shift: the plan's text is longer than doc's by it
            return plan, fill.run(backend, plan, cfg, session=job.uri, cancel=job.cancel_event,
                                  on_partial=lambda p: on_partial(p, span), native=native, **limits)

        try:
            plan, outcome = await self.worker.run(job, work)
        except Cancelled:
            raise job.error() from None
        except JsonRpcException:
            raise
        except Exception as exc:  # the engine failed on this request: it fails, the server goes on
            log.error("%s for %s v%s failed: %s: %s", kind, doc.uri, job.version, type(exc).__name__, exc,
                      exc_info=exc)
            raise JsonRpcException(message=f"the fill failed: {type(exc).__name__}: {exc}",
                                   code=REQUEST_FAILED) from None
        finally:
            self.jobs.finish(job)
        if not self.is_current(job):
            job.cancel("modified")
            raise job.error()
        refused = next((r for r in outcome.reasons if r is not None), None)  # a completion refused shows nothing
        self.last = {"lastLatencyMs": round((time.perf_counter() - t0) * 1e3, 1),
                     "lastRefused": refused,  # the guard's reason (status bars said only the time of a refused fill)
                     # a fill given up with no text (unsure) has no rate to show: clients showed "0.0 tok/fwd"
                     "tokensPerForward": round(outcome.stats.tokens_per_forward, 3) if outcome.stats.tokens else None,
                     "nfe": outcome.stats.nfe,
                     "contextTokens": len(plan.canvas.context_ids) if plan.canvas else None,
                     "cacheReused": outcome.reused, "repoContext": self.repo_last,
                     "minConfidence": None if outcome.stats.min_confidence is None
                     else round(outcome.stats.min_confidence, 3)}
        log.debug("%s %s v%s: %d tokens, nfe %d, %.0f ms%s", kind, doc.uri, doc.version, outcome.stats.tokens,
                  outcome.stats.nfe, self.last["lastLatencyMs"], f"; refused: {refused}" if refused else "")
        return job, plan, outcome

    def _send_partial(self, job: Job, span: tuple[int, int], p: fill.Partial) -> None:
        if not self.is_current(job):
            return
        doc = self.documents[job.uri]
        self._notify_canvas(job, self.lsp_range(doc, *span), p.text, _utf16(p.text, p.masks), p.nfe, p.block,
                            p.remasked, done=False)

    def send_done(self, job: Job, rng: types.Range, text: str, outcome: fill.Outcome) -> None:
        """The last canvas notification: the result itself; `reason` when the guard refused every hole's fill (the
        text is then the document's own), `cut` when a growing fill was stopped ("limit", "repetition")."""
        refused = [r for r in outcome.reasons if r is not None]
        reason = refused[0] if refused and len(refused) == len(outcome.reasons) else None
        # ms: the server's own time for the request, from its handler to this result (what the transport, the event
        # loop and the notifications add on top of it is what a client sees beyond it)
        ms = round((time.perf_counter() - job.started) * 1e3, 1)
        self._notify_canvas(job, rng, text, [], outcome.stats.nfe, outcome.stats.blocks, 0, done=True, reason=reason,
                            cut=outcome.stats.cut or None, ms=ms)

    def _notify_canvas(self, job: Job, rng: types.Range, text: str, masks: list, nfe: int, block: int,
                       remasked: int, done: bool, **final: Any) -> None:
        job.step += 1
        self.protocol.notify(CANVAS, {
            "uri": job.uri, "version": job.version, "id": job.id, "step": job.step, "nfe": nfe, "block": block,
            "range": rng, "text": text, "masks": masks, "remasked": remasked, "done": done, **final,
        })

    # -- features -----------------------------------------------------------------------------------------------------

    async def rewrite(self, p: RewriteParams) -> tuple[Job, types.TextEdit | None, str | None]:
        """Rewrite p.range; stream it; the edit for exactly that range, or None and the reason the guard refused it."""
        doc = self.document(p.text_document.uri)
        if not self.enabled(doc):
            raise JsonRpcException(message=f"diffusion-ls is off for {doc.language or 'this language'} "
                                   "(the `languages` setting)", code=REQUEST_FAILED)
        start, end = self.range_offsets(doc, p.range)
        if start == end:
            raise JsonRpcInvalidParams(message="the range to rewrite is empty: select some text")
        if p.instruction and self.backend is not None and not self.backend.capabilities.instructions:
            log.info("rewrite: the %s model follows no instructions; %r is ignored", self.backend.model_name,
                     p.instruction)
        text, lang = doc.text, doc.language
        job, plan, out = await self.run_fill(doc, "rewrite", lambda tok, budget, max_tokens, repo: fill.plan_rewrite(
            text, start, end, lang, tok, budget, max_tokens, p.mode, p.instruction or "", repo=repo), at=start)
        rng = self.lsp_range(doc, start, end)
        self.send_done(job, rng, out.text, out)
        reason = out.refused(0)
        if reason is not None:
            log.info("rewrite of %s refused: %s", doc.uri, reason)
            return job, None, reason
        return job, types.TextEdit(rng, out.fills[0]), None


def _load_hint(settings: Settings) -> str:
    """What to change when the model did not load: the embedded model's hint names modelPath only when it is set."""
    if settings.backend == "embedded" and settings.model_path is None:
        return "check `device` and `dtype`; if the shipped model's files are damaged, reinstall diffusion-ls."
    return _LOAD_HINTS[settings.backend]


_LOAD_HINTS = {
    "embedded": "set `modelPath` to a model directory (config.json, model.safetensors, tokenizer.json) or remove it to "
                "use the shipped model; check `device` and `dtype`.",
    "transformers": "set `modelPath` to a local DiffusionGemma checkpoint directory (config.json, safetensors weights, "
                    "tokenizer files); install the `hf` extra (transformers >= 5.11); check `device` and `dtype`.",
    "vllm": "set `modelPath` to a local DiffusionGemma checkpoint directory and install the `vllm` extra on a GPU "
            "machine, or use the vllm-remote backend.",
    "vllm-remote": "set `serverUrl` to a running `vllm serve` (and `serverModel` to a model it serves); put its API "
                   "key, if any, in the DIFFUSION_LS_API_KEY environment variable.",
    "masked-diffusion": "set `modelPath` to a local Dream/LLaDA-family checkpoint directory (config.json, safetensors "
                        "weights, tokenizer files); Dream and LLaDA ship their model code: `trustRemoteCode` true; "
                        "install the `hf` extra; check `device` and `dtype`.",
    "mercury": "put an Inception API key in the INCEPTION_API_KEY environment variable of the editor that starts "
               "diffusion-ls (`serverUrl` only for another endpoint than Inception's public API); `pip install httpx`.",
}


def model_ratings(model_dir: Any) -> dict[str, str]:
    """{language: rating} from a model directory's languages.json (written by tools/language_table.py from measured
    evals); {} when there is none or it cannot be read: then no language counts as weak."""
    if not model_dir:
        return {}
    path = Path(model_dir) / "languages.json"
    try:
        langs = json.loads(path.read_text(encoding="utf-8")).get("languages", {})
        return {str(k): str(v["rating"]) for k, v in langs.items() if isinstance(v, dict) and "rating" in v}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, AttributeError) as exc:
        log.warning("%s cannot be read (%s): no language counts as weak", path, exc)
        return {}


def _path(uri: str) -> Path | None:
    """The file path of a file:// URI; None for other schemes (untitled buffers)."""
    from pygls.uris import to_fs_path

    p = to_fs_path(uri) if uri.startswith("file:") else None
    return Path(p) if p else None


def _open_backend(settings: Settings) -> Any:
    """The backend the settings name, through engine.backends.load_backend (on the engine thread)."""
    from engine.backends import load_backend

    backend = load_backend(settings.backend, **settings.backend_options())
    gc.collect()  # what loading left, once; then the model's objects stay out of every later collection (a pause in
    gc.freeze()  # a keystroke's fill each time the collector's full pass runs)
    return backend


# -- handlers ----------------------------------------------------------------------------------------------------------


def create_server() -> DiffusionLanguageServer:
    """A server with every handler registered."""
    ls = DiffusionLanguageServer()
    logs.attach(ls)

    @ls.feature(types.INITIALIZE)
    def initialize(ls: DiffusionLanguageServer, params: types.InitializeParams) -> None:
        """Adopt initializationOptions."""
        ls.loop = asyncio.get_running_loop()
        ls.apply_settings(params.initialization_options, None)
        folders = [f.uri for f in params.workspace_folders or ()] or [u for u in (params.root_uri,) if u]
        ls.roots = [p for p in map(_path, folders) if p is not None]

    @ls.feature(types.INITIALIZED)
    def initialized(ls: DiffusionLanguageServer, params: types.InitializedParams) -> None:
        """Start loading the model and indexing the workspace in the background; requests wait for the model only."""
        ls.start_loading()
        caps = ls.client_capabilities.workspace
        watched = caps.did_change_watched_files if caps is not None else None
        if watched is not None and watched.dynamic_registration:  # files changed outside the editor update the index
            opts = types.DidChangeWatchedFilesRegistrationOptions([types.FileSystemWatcher("**/*")])
            reg = types.Registration("diffusion-ls-watch", types.WORKSPACE_DID_CHANGE_WATCHED_FILES, opts)
            asyncio.ensure_future(ls.register_quietly(types.RegistrationParams([reg])))
        else:  # Neovim on Linux watches no files by default: the index walks the roots again now and then
            ls.repo.rescan_every(RESCAN_S)
        ls.start_indexing()

    @ls.feature(types.SHUTDOWN)
    def shutdown(ls: DiffusionLanguageServer, params: None) -> None:
        """Stop every job."""
        ls.shutdown_requested = True
        ls.jobs.cancel_all("closed")

    @ls.feature(types.EXIT)
    def exit_(ls: DiffusionLanguageServer, params: None) -> None:
        """Let the engine thread go."""
        ls.jobs.cancel_all("closed")
        ls.worker.shutdown()

    @ls.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(ls: DiffusionLanguageServer, params: types.DidChangeConfigurationParams) -> None:
        """Adopt pushed settings at once (later requests see them); an empty push means: pull them."""
        raw = _plain(params.settings)
        if raw:
            ls.reconfigure(raw)
            return
        caps = ls.client_capabilities.workspace
        if caps is not None and caps.configuration:
            asyncio.ensure_future(ls.pull_settings())

    @ls.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: DiffusionLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
        """Track the document."""
        td = params.text_document
        ls.jobs.cancel(td.uri, "closed")
        ls.out_of_sync.pop(td.uri, None)
        ls.documents[td.uri] = Document(td.uri, td.text, td.version, td.language_id)
        ls.language_ids[td.uri] = td.language_id
        path = _path(td.uri)
        if path is not None:
            ls.repo.opened(path, td.text)

    @ls.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: DiffusionLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
        """Apply the edits; the document's in-flight job is now outdated."""
        uri = params.text_document.uri
        ls.jobs.cancel(uri, "modified")
        doc = ls.documents.get(uri)
        if doc is None:
            log.warning("didChange for %s, which is not open", uri)
            return
        for change in params.content_changes:
            rng = getattr(change, "range", None)
            try:
                doc.apply_change(rng, change.text)
            except PositionError as exc:
                log.error("didChange for %s does not fit the document (%s); close and reopen it", uri, exc)
                ls.out_of_sync[uri] = f"a change did not apply: {exc}"
            else:
                if rng is None:  # the whole text: in sync again
                    ls.out_of_sync.pop(uri, None)
        doc.version = params.text_document.version
        path, rng = _path(uri), getattr(params.content_changes[-1], "range", None) if params.content_changes else None
        if path is not None:
            ls.repo.changed(path, rng.start.line if rng is not None else 0)

    @ls.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: DiffusionLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
        """Forget the document and its cached context."""
        uri = params.text_document.uri
        ls.jobs.cancel(uri, "closed")
        ls.recent.pop(uri, None)
        doc = ls.documents.pop(uri, None)
        ls.language_ids.pop(uri, None)
        ls.out_of_sync.pop(uri, None)
        if ls.backend is not None:
            ls.worker.submit(ls.backend.drop_session, uri)
        path = _path(uri)
        if path is not None and doc is not None:
            ls.repo.left(path, doc.text)  # its last edits into the ring and the index
            ls.repo.forget(path)

    @ls.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: DiffusionLanguageServer, params: types.DidSaveTextDocumentParams) -> None:
        """Index the saved file again (in the background)."""
        path, doc = _path(params.text_document.uri), ls.documents.get(params.text_document.uri)
        if path is not None:
            ls.repo.file_changed(path, params.text if params.text is not None else doc.text if doc else None)

    @ls.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def did_change_watched_files(ls: DiffusionLanguageServer, params: types.DidChangeWatchedFilesParams) -> None:
        """Files created, changed or deleted outside the editor: index them again (in the background)."""
        for change in params.changes:
            path = _path(change.uri)
            if path is None or change.uri in ls.documents:  # an open document's text is the editor's
                continue
            if change.type == types.FileChangeType.Deleted:
                ls.repo.file_deleted(path)
            else:
                ls.repo.file_changed(path)

    @ls.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
    def did_change_workspace_folders(ls: DiffusionLanguageServer,
                                     params: types.DidChangeWorkspaceFoldersParams) -> None:
        """Index added folders (in the background); forget removed ones."""
        for f in params.event.removed:
            p = _path(f.uri)
            if p is not None:
                ls.roots = [r for r in ls.roots if r != p]
                ls.repo.remove_root(p)
        for f in params.event.added:
            p = _path(f.uri)
            if p is not None and p not in ls.roots:
                ls.roots.append(p)
        ls.start_indexing()

    @ls.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(ls: DiffusionLanguageServer,
                                params: types.InlineCompletionParams) -> types.InlineCompletionList:
        """Fill the hole at the cursor; the canvas streams as diffusion/canvas notifications."""
        doc = ls.document(params.text_document.uri)
        offset = ls.offset(doc, params.position)
        if not ls.enabled(doc):
            return types.InlineCompletionList(items=[])
        text, lang = doc.text, doc.language
        automatic = params.context is not None and \
            params.context.trigger_kind == types.InlineCompletionTriggerKind.Automatic
        if automatic and offset < len(text) and (text[offset].isalnum() or text[offset] == "_"):
            return types.InlineCompletionList(items=[])  # typing inside a word: only an explicit request fills here
        if not ls.completes_as_you_type(doc, automatic):
            return types.InlineCompletionList(items=[])
        # the editor's suggestion list is open on an item: its text replaces the word typed so far, and the completion
        # must go on from it (VS Code shows only an inline item that extends the selected suggestion)
        sel = params.context.selected_completion_info if params.context is not None else None
        start, chosen = offset, ""
        if sel is not None:
            a, b = ls.range_offsets(doc, sel.range)
            if b == offset and sel.text:
                start, chosen = a, sel.text
        filled, at = (text[:start] + chosen + text[offset:], start + len(chosen)) if chosen else (text, offset)
        typed = text[start:offset]
        given = len(chosen) - len(typed) if chosen.startswith(typed) else len(chosen)  # the list's, not the user's
        # asked for (Alt+\, <M-\>), the model runs again and streams, though a suggestion is showing here already
        ahead = None if chosen or not automatic else ls.typed_ahead(doc.uri, text, offset)
        if ahead is not None:  # answered at once; still a job, so it supersedes a fill in flight like any request
            job = ls.jobs.start(doc.uri, doc.version, ls.protocol.msg_id, "inline")
            ls.jobs.finish(job)
            out = fill.Outcome([ahead], ahead, SampleStats())
        else:
            # as you type, a guess the model was unsure of, or slow to finish, is not shown; asked for, it is
            job, _plan, out = await ls.run_fill(doc, "inline", lambda tok, budget, max_tokens, repo: fill.plan_cursor(
                filled, at, lang, tok, budget, max_tokens, repo=repo, given=given), at=offset,
                typing=automatic, shift=at - offset)
        insert = out.fills[0]  # "" when the guard refused it (out.refused)
        if insert and not chosen:
            ls.remember(doc.uri, text, offset, insert)
        # inserted at the cursor, as the guard judged it: an answer ending like the rest of the line (`oup(1)` before
        # an auto-closed `)`) needs its own `)`, and replacing the rest with it left `re.sub(` unclosed
        rng = ls.lsp_range(doc, start, offset)
        insert = chosen + insert if insert else ""
        ls.send_done(job, rng, insert, out)
        if not insert:
            return types.InlineCompletionList(items=[])
        return types.InlineCompletionList(items=[types.InlineCompletionItem(insert_text=insert, range=rng)])

    @ls.feature(INFILL)
    async def infill(ls: DiffusionLanguageServer, params: Any) -> dict:
        """Fill a cursor, ranges, or every placeholder of the document (fill.plan_ranges: a canvas each)."""
        p = _parse(InfillParams, params)
        doc = ls.document(p.text_document.uri)
        if not ls.enabled(doc):
            raise JsonRpcException(message=f"diffusion-ls is off for {doc.language or 'this language'} "
                                   "(the `languages` setting)", code=REQUEST_FAILED)
        if p.position is not None:
            o = ls.offset(doc, p.position)
            ranges: list[tuple[int, int]] | None = [(o, o)]
        else:
            ranges = None if p.ranges is None else [ls.range_offsets(doc, r) for r in p.ranges]
        text, lang = doc.text, doc.language
        job, plan, out = await ls.run_fill(doc, "infill", lambda tok, budget, max_tokens, repo: fill.plan_ranges(
            text, ranges, lang, tok, budget, max_tokens, repo=repo), at=ranges[0][0] if ranges else None)
        ls.send_done(job, ls.lsp_range(doc, *plan.span), out.text, out)
        edits, kept = [], []
        for start, end in plan.later:
            kept.append({"range": ls.lsp_range(doc, start, end), "reason": f"past the first {fill.MAX_PLACEHOLDERS} "
                         "placeholders one request fills: fill again, or select it"})
        for i, (h, f) in enumerate(zip(plan.holes, out.fills, strict=True)):
            rng, reason = ls.lsp_range(doc, h.start, h.end), out.refused(i)
            if reason is None:
                edits.append(types.TextEdit(rng, f))
            else:
                kept.append({"range": rng, "reason": reason})
        kept.sort(key=lambda k: (k["range"].start.line, k["range"].start.character))
        if kept:
            log.info("infill of %s: %d of %d holes kept: %s", doc.uri, len(kept),
                     len(plan.holes) + len(plan.later),
                     "; ".join(k["reason"] for k in kept))
        return {"edits": edits, "kept": kept, "version": job.version}

    @ls.feature(REWRITE)
    async def rewrite(ls: DiffusionLanguageServer, params: Any) -> dict:
        """Rewrite a selection (regenerate or refine); the edit replaces exactly that range."""
        job, edit, reason = await ls.rewrite(_parse(RewriteParams, params))
        return {"edit": edit, "version": job.version, "reason": reason}

    @ls.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.RefactorRewrite]))
    def code_action(ls: DiffusionLanguageServer, params: types.CodeActionParams) -> list[types.CodeAction]:
        """Offer rewriting a non-empty selection."""
        r = params.range
        if params.text_document.uri not in ls.documents or (r.start.line, r.start.character) == (r.end.line,
                                                                                              r.end.character):
            return []
        rng = {"start": {"line": r.start.line, "character": r.start.character},
               "end": {"line": r.end.line, "character": r.end.character}}
        actions = []
        for mode, title in (("regenerate", "Diffusion: rewrite selection"), ("refine", "Diffusion: refine selection")):
            args = [{"textDocument": {"uri": params.text_document.uri}, "range": rng, "mode": mode}]
            actions.append(types.CodeAction(title, kind=types.CodeActionKind.RefactorRewrite,
                                            command=types.Command(title, REWRITE_COMMAND, arguments=args)))
        return actions

    @ls.command(REWRITE_COMMAND)
    async def rewrite_command(ls: DiffusionLanguageServer, *args: Any) -> dict:
        """Rewrite and apply the edit with workspace/applyEdit (a versioned edit where the client supports it)."""
        if len(args) != 1:
            raise JsonRpcInvalidParams(message=f"{REWRITE_COMMAND} takes one argument: the diffusion/rewrite params")
        job, edit, reason = await ls.rewrite(_parse(RewriteParams, args[0]))
        if edit is None:  # a code action's caller shows no result: say it here
            ls.window_show_message(types.ShowMessageParams(types.MessageType.Warning,
                                                           f"diffusion-ls: rewrite refused: {reason}"))
            return {"applied": False, "edit": None, "version": job.version, "reason": reason}
        caps = ls.client_capabilities.workspace
        if caps and caps.workspace_edit and caps.workspace_edit.document_changes:
            ident = types.OptionalVersionedTextDocumentIdentifier(job.uri, job.version)
            wedit = types.WorkspaceEdit(document_changes=[types.TextDocumentEdit(ident, [edit])])
        else:
            wedit = types.WorkspaceEdit(changes={job.uri: [edit]})
        res = await ls.workspace_apply_edit_async(types.ApplyWorkspaceEditParams(wedit, label="Diffusion rewrite"))
        applied = bool(getattr(res, "applied", False))
        if not applied:
            log.info("rewrite of %s not applied: %s", job.uri, getattr(res, "failure_reason", None))
        return {"applied": applied, "edit": edit, "version": job.version}

    @ls.feature(STATUS)
    def status(ls: DiffusionLanguageServer, params: Any) -> dict:
        """What is loaded, and how the last fill went."""
        b = ls.backend
        out = {
            "backend": getattr(b, "name", None) or ls.settings.backend,
            "model": getattr(b, "model_name", None),
            "modelPath": str(getattr(b, "model_dir", "")) or ls.settings.model_path,
            "device": getattr(b, "device", ls.settings.device),
            "steppable": getattr(b, "steppable", None),  # False: no intermediate canvases, one per committed canvas
            "capabilities": b.capabilities.as_json() if b is not None else None,
            "languages": ls.ratings(),  # measured quality per language: "good", "fair", "weak"
            "weakLanguages": ls.settings.weak_languages,
            "strategy": ls.settings.strategy,
            "loaded": b is not None,
            "loading": ls._load is not None and not ls._load.done(),
            "serverVersion": __version__,
            "repo": {**ls.repo.status(), "budget": ls.settings.repo_wanted(b), "off": ls.repo_off(b)},
            **ls.last,
        }
        if hasattr(b, "cache_stats"):  # the per-document context caches (an LRU)
            c = b.cache_stats()
            out.update(cacheSessions=c["sessions"], cacheBytes=c["bytes"], cacheMaxSessions=c["max_sessions"],
                       cacheSessionBytes=c["session_bytes"])
        if getattr(b, "url", None):
            out["serverUrl"] = b.url
        if getattr(b, "memory_estimate_bytes", None):  # the weights' memory: measured (transformers) or computed
            out["memoryEstimateGiB"] = round(b.memory_estimate_bytes / 2**30, 3)  # from the checkpoint (vllm)
            out["memoryFormat"] = getattr(b, "memory_format", None)
        if ls.backend_error:
            out["error"] = ls.backend_error
        if ls.settings_problems:
            out["settingsProblems"] = ls.settings_problems
        return out

    return ls
