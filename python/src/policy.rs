//! Policies written in Python: [`PyPolicy`] wraps an object with `decide(view)` as a Rust
//! [`Policy`], so the library's engine, invariant checks and bound run it like any other.
//! The view handed to Python ([`PyView`]) reads the engine's own [`View`] for the length of
//! one call; decisions come back as [`PyDecision`]s, checked here only where the engine
//! would index with them (request ids), everything else by the engine itself.
//!
//! A Python exception inside `decide` stops the run: the adapter keeps it and answers the
//! engine with a decision the engine always refuses (a wake-up at time zero), and the
//! binding raises the kept exception instead of the engine's refusal.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use pyo3::exceptions::{PyIndexError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;

use tetriserve::Nanos;
use tetriserve::cluster::{GpuSet, Link};
use tetriserve::policy::{Batch, Decision, Dispatch, MAX_BATCH, Phase, Policy, View};
use tetriserve::workload::RequestId;

/// Where a Python policy's exception waits for the binding.
pub type ErrorSlot = Rc<RefCell<Option<PyErr>>>;

/// A Python object with `decide(view) -> list[Decision]` as a Rust [`Policy`].
pub struct PyPolicy {
    name: String,
    decide: Py<PyAny>,
    batches: bool,
    error: ErrorSlot,
    /// Ids below this have arrived: the ones a decision may name.
    arrived: u32,
}

impl PyPolicy {
    /// Wraps `obj`, named by its `name` attribute (else its class name); `batches` by its
    /// `batches` attribute (default false).
    pub fn new(_py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<(PyPolicy, ErrorSlot)> {
        let decide = obj.getattr("decide").map_err(|_| {
            PyTypeError::new_err("a policy needs a method decide(view) -> list[Decision]")
        })?;
        if !decide.is_callable() {
            return Err(PyTypeError::new_err("policy.decide is not callable"));
        }
        let name: String = match obj.getattr("name") {
            Ok(n) if !n.is_none() => n.extract()?,
            _ => obj.get_type().name()?.to_string(),
        };
        if name.is_empty() {
            return Err(PyValueError::new_err("a policy's name cannot be empty"));
        }
        let batches: bool = match obj.getattr("batches") {
            Ok(b) => b.extract()?,
            Err(_) => false,
        };
        let error = ErrorSlot::default();
        Ok((
            PyPolicy {
                name,
                decide: decide.unbind(),
                batches,
                error: error.clone(),
                arrived: 0,
            },
            error,
        ))
    }

    pub fn batches(&self) -> bool {
        self.batches
    }

    fn call(&mut self, py: Python<'_>, view: &View<'_>, out: &mut Vec<Decision>) -> PyResult<()> {
        if let Some(last) = view.arrived.last() {
            self.arrived = self.arrived.max(last.0 + 1);
        }
        let py_view = Bound::new(
            py,
            PyView {
                // SAFETY: the pointer is read only while `live` is true, and `live` is set to
                // false below, before `view` goes out of scope; `PyView` is unsendable, so no
                // other thread can read it.
                view: std::ptr::from_ref(view).cast::<View<'static>>(),
                live: Cell::new(true),
                arrived: self.arrived,
            },
        )?;
        let result = self.decide.bind(py).call1((py_view.clone(),));
        py_view.borrow().live.set(false);
        let result = result?;
        for item in result.try_iter().map_err(|_| {
            PyTypeError::new_err(format!(
                "{}.decide must return a list of Decision, got {}",
                self.name,
                result
                    .get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })? {
            let item = item?;
            let d = item.cast::<PyDecision>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "{}.decide returned {} where a Decision was expected",
                    self.name,
                    item.get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ))
            })?;
            let d = d.get().0;
            self.check_ids(&d)?;
            out.push(d);
        }
        Ok(())
    }

    /// Refuses ids the engine would index with before checking them.
    fn check_ids(&self, d: &Decision) -> PyResult<()> {
        let ids: &[RequestId] = match d {
            Decision::Dispatch(disp) => disp.batch.ids(),
            Decision::Drop(id) | Decision::Cut(id) => std::slice::from_ref(id),
            Decision::WakeAt(_) => &[],
        };
        match ids.iter().find(|id| id.0 >= self.arrived) {
            Some(id) => Err(PyValueError::new_err(format!(
                "policy `{}`: a decision names request {}, which has not arrived",
                self.name, id.0
            ))),
            None => Ok(()),
        }
    }
}

impl Policy for PyPolicy {
    fn name(&self) -> &str {
        &self.name
    }

    fn decide(&mut self, view: &View<'_>, out: &mut Vec<Decision>) {
        if self.error.borrow().is_none() {
            let result = Python::attach(|py| self.call(py, view, out));
            match result {
                Ok(()) => return,
                Err(e) => *self.error.borrow_mut() = Some(e),
            }
        }
        // Stop the run: the engine refuses a wake-up that is not after now.
        out.clear();
        out.push(Decision::WakeAt(Nanos::ZERO));
    }
}

/// What a Python policy sees at one decision point: the engine's view, read-only, valid only
/// during the `decide` call it is passed to. Request ids are dense indices in arrival order
/// (what decisions name); times are integer nanoseconds.
#[pyclass(name = "View", module = "tetriserve._core", unsendable)]
pub struct PyView {
    view: *const View<'static>,
    live: Cell<bool>,
    arrived: u32,
}

impl PyView {
    fn get(&self) -> PyResult<&View<'static>> {
        if !self.live.get() {
            return Err(PyRuntimeError::new_err(
                "this view belongs to a decide() call that has returned; read what you need during the call",
            ));
        }
        // SAFETY: `live` is true only during the `decide` call, while the view is borrowed.
        Ok(unsafe { &*self.view })
    }

    fn id(&self, id: u32) -> PyResult<RequestId> {
        if id < self.arrived {
            Ok(RequestId(id))
        } else {
            Err(PyIndexError::new_err(format!(
                "request {id} has not arrived (ids below {} have)",
                self.arrived
            )))
        }
    }

    fn node(&self, view: &View<'_>, node: u32) -> PyResult<u32> {
        if node < view.cluster.nodes {
            Ok(node)
        } else {
            Err(PyIndexError::new_err(format!(
                "node {node}: the cluster has {} node(s)",
                view.cluster.nodes
            )))
        }
    }
}

fn ids(v: &[RequestId]) -> Vec<u32> {
    v.iter().map(|id| id.0).collect()
}

#[pymethods]
impl PyView {
    /// The current time, in nanoseconds.
    #[getter]
    fn now(&self) -> PyResult<u64> {
        Ok(self.get()?.now.0)
    }

    /// Requests that arrived at this instant, in arrival order.
    #[getter]
    fn arrived(&self) -> PyResult<Vec<u32>> {
        Ok(ids(self.get()?.arrived))
    }

    /// Requests whose dispatched work completed at this instant (some may now be finished).
    #[getter]
    fn completed(&self) -> PyResult<Vec<u32>> {
        Ok(ids(self.get()?.completed))
    }

    /// Arrived requests that have not ended (waiting or running), in arrival order.
    #[getter]
    fn active(&self) -> PyResult<Vec<u32>> {
        Ok(ids(self.get()?.active))
    }

    /// Active requests waiting for GPUs, in arrival order.
    fn waiting(&self) -> PyResult<Vec<u32>> {
        Ok(self.get()?.waiting().map(|s| s.id().0).collect())
    }

    /// Whether a timer asked for with `Decision.wake_at` fired at this instant.
    #[getter]
    fn timer(&self) -> PyResult<bool> {
        Ok(self.get()?.timer)
    }

    /// Whether running work can be cut at a step boundary (`Decision.cut`).
    #[getter]
    fn can_cut(&self) -> PyResult<bool> {
        Ok(self.get()?.can_cut)
    }

    #[getter]
    fn nodes(&self) -> PyResult<u32> {
        Ok(self.get()?.cluster.nodes)
    }

    #[getter]
    fn gpus_per_node(&self) -> PyResult<u32> {
        Ok(self.get()?.cluster.gpus_per_node)
    }

    /// The idle GPUs of `node` as a bit mask (bit i: local GPU i).
    fn free_mask(&self, node: u32) -> PyResult<u64> {
        let v = self.get()?;
        Ok(v.free.node_mask(self.node(v, node)?))
    }

    /// How many GPUs are idle on `node`, or in the cluster when `node` is None.
    #[pyo3(signature = (node=None))]
    fn free_count(&self, node: Option<u32>) -> PyResult<u32> {
        let v = self.get()?;
        match node {
            None => Ok(v.free.total_free()),
            Some(n) => Ok(v.free.free_on(self.node(v, n)?)),
        }
    }

    /// The `k` lowest-numbered idle GPUs of `node`, or None if it has fewer idle.
    fn lowest_free(&self, node: u32, k: u32) -> PyResult<Option<PyGpuSet>> {
        let v = self.get()?;
        Ok(v.free.lowest_free(self.node(v, node)?, k).map(PyGpuSet))
    }

    /// A snapshot of request `id`.
    fn request(&self, id: u32) -> PyResult<PyRequest> {
        let v = self.get()?;
        let id = self.id(id)?;
        let s = v.request(id);
        Ok(PyRequest {
            id: id.0,
            label: s.request.label,
            arrival: s.request.arrival.0,
            deadline: s.request.deadline.0,
            width: s.request.resolution.width,
            height: s.request.resolution.height,
            frames: s.request.resolution.frames,
            steps: s.request.steps,
            steps_done: s.steps_done,
            remaining_steps: s.remaining_steps(),
            expected_remaining_steps: v.expected_remaining_steps(id),
            phase: match s.phase {
                Phase::Future => "future",
                Phase::Waiting => "waiting",
                Phase::Running => "running",
                Phase::Finished => "finished",
                Phase::Dropped => "dropped",
            },
            gpus: s.gpus.map(PyGpuSet),
            first_start: s.first_start.map(|t| t.0),
        })
    }

    /// The time of one step of request `id` at SP `degree` with `batch` requests, over NVLink
    /// (what the library's schedulers plan with), in nanoseconds; None where the cost model
    /// has no batch of that size.
    #[pyo3(signature = (id, degree, batch=1))]
    fn step_time(&self, id: u32, degree: u32, batch: u32) -> PyResult<Option<u64>> {
        let v = self.get()?;
        let class = v.request(self.id(id)?).class;
        if !degree.is_power_of_two() || degree > v.costs.max_degree() {
            return Err(PyValueError::new_err(format!(
                "degree {degree}: expected a power of two up to {}",
                v.costs.max_degree()
            )));
        }
        Ok(v.costs.get(class, degree, batch, Link::NvLink).map(|t| t.0))
    }

    /// The SP degrees a work may use: powers of two up to the node size.
    fn degrees(&self) -> PyResult<Vec<u32>> {
        let v = self.get()?;
        Ok((0..32)
            .map(|i| 1u32 << i)
            .take_while(|&k| k <= v.costs.max_degree())
            .collect())
    }

    fn __repr__(&self) -> String {
        match self.get() {
            Ok(v) => format!(
                "View(now={}, active={}, free_gpus={})",
                v.now.0,
                v.active.len(),
                v.free.total_free()
            ),
            Err(_) => "View(<expired>)".to_string(),
        }
    }
}

/// One request as a policy sees it (a snapshot). Times in nanoseconds.
#[pyclass(name = "Request", module = "tetriserve._core", frozen, get_all)]
pub struct PyRequest {
    /// The id decisions name (dense, in arrival order).
    id: u32,
    /// The trace's id.
    label: u64,
    arrival: u64,
    deadline: u64,
    width: u32,
    height: u32,
    /// 1 for an image, the clip's frame count for a video.
    frames: u32,
    steps: u32,
    steps_done: u32,
    remaining_steps: u32,
    expected_remaining_steps: u32,
    /// "waiting", "running", "finished" or "dropped".
    phase: &'static str,
    /// The GPUs it runs on now or ran on last.
    gpus: Option<PyGpuSet>,
    first_start: Option<u64>,
}

#[pymethods]
impl PyRequest {
    fn __repr__(&self) -> String {
        format!(
            "Request(id={}, {}x{}, steps_done={}/{}, deadline={}, {})",
            self.id,
            self.width,
            self.height,
            self.steps_done,
            self.steps,
            self.deadline,
            self.phase
        )
    }
}

/// A set of GPUs inside one node: the node and a bit mask of local GPUs. Its size is the SP
/// degree of work placed on it.
#[pyclass(name = "GpuSet", module = "tetriserve._core", frozen, eq, hash)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PyGpuSet(pub GpuSet);

#[pymethods]
impl PyGpuSet {
    #[new]
    fn new(node: u32, mask: u64) -> PyResult<PyGpuSet> {
        if mask == 0 {
            return Err(PyValueError::new_err("a GPU set cannot be empty (mask 0)"));
        }
        Ok(PyGpuSet(GpuSet::new(node, mask)))
    }

    /// GPUs `first .. first + count` of `node`.
    #[staticmethod]
    fn range(node: u32, first: u32, count: u32) -> PyResult<PyGpuSet> {
        if count == 0 || first.checked_add(count).is_none_or(|end| end > 64) {
            return Err(PyValueError::new_err(format!(
                "GPUs {first}..{first}+{count}: expected 1 or more GPUs below 64"
            )));
        }
        Ok(PyGpuSet(GpuSet::range(node, first, count)))
    }

    #[getter]
    fn node(&self) -> u32 {
        self.0.node()
    }

    #[getter]
    fn mask(&self) -> u64 {
        self.0.mask()
    }

    /// The number of GPUs: the SP degree of work placed on it.
    #[getter]
    fn degree(&self) -> u32 {
        self.0.len()
    }

    /// Local GPU indices, ascending.
    #[getter]
    fn gpus(&self) -> Vec<u32> {
        self.0.local_gpus().collect()
    }

    fn __repr__(&self) -> String {
        format!("GpuSet(node={}, mask={:#b})", self.0.node(), self.0.mask())
    }
}

/// What a policy asks the engine to do: build with `Decision.dispatch`, `Decision.wake_at`,
/// `Decision.drop` or `Decision.cut`.
#[pyclass(name = "Decision", module = "tetriserve._core", frozen, eq)]
#[derive(Clone, Copy, PartialEq)]
pub struct PyDecision(pub Decision);

#[pymethods]
impl PyDecision {
    /// Run `requests` (an id, or up to 4 ids of one resolution at the same step) for `steps`
    /// denoising steps on `gpus`.
    #[staticmethod]
    fn dispatch(requests: &Bound<'_, PyAny>, steps: u32, gpus: PyGpuSet) -> PyResult<PyDecision> {
        let ids: Vec<RequestId> = match requests.extract::<u32>() {
            Ok(id) => vec![RequestId(id)],
            Err(_) => requests
                .extract::<Vec<u32>>()
                .map_err(|_| {
                    PyTypeError::new_err("requests: expected a request id or a list of ids")
                })?
                .into_iter()
                .map(RequestId)
                .collect(),
        };
        let batch = Batch::of(&ids).ok_or_else(|| {
            PyValueError::new_err(format!(
                "a dispatch carries 1 to {MAX_BATCH} requests, got {}",
                ids.len()
            ))
        })?;
        Ok(PyDecision(Decision::Dispatch(Dispatch {
            batch,
            steps,
            gpus: gpus.0,
        })))
    }

    /// Call the policy again at time `t` (nanoseconds; must be after now).
    #[staticmethod]
    fn wake_at(t: u64) -> PyDecision {
        PyDecision(Decision::WakeAt(Nanos(t)))
    }

    /// Give up on waiting request `id` (it ends as dropped, an SLO miss).
    #[staticmethod]
    fn drop(id: u32) -> PyDecision {
        PyDecision(Decision::Drop(RequestId(id)))
    }

    /// End running request `id`'s work at its next step boundary (where `view.can_cut`).
    #[staticmethod]
    fn cut(id: u32) -> PyDecision {
        PyDecision(Decision::Cut(RequestId(id)))
    }

    fn __repr__(&self) -> String {
        match self.0 {
            Decision::Dispatch(d) => format!(
                "Decision.dispatch({:?}, steps={}, gpus=GpuSet(node={}, mask={:#b}))",
                d.batch.ids().iter().map(|i| i.0).collect::<Vec<_>>(),
                d.steps,
                d.gpus.node(),
                d.gpus.mask()
            ),
            Decision::WakeAt(t) => format!("Decision.wake_at({})", t.0),
            Decision::Drop(id) => format!("Decision.drop({})", id.0),
            Decision::Cut(id) => format!("Decision.cut({})", id.0),
        }
    }
}
