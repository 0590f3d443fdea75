//! A block of a JSON Lines file split into its records here, without a Python object
//! per line: the board reads each line where it lies in the block (`decide_batch`), and
//! Python makes the bytes of a line only when it asks for one (a dead letter).

use super::*;
use pyo3::types::PySlice;

/// The non-blank lines of a block of bytes, as spans of it, in order.
///
/// A sequence of `bytes` to Python (`len`, an index, a slice of step 1), which makes each
/// line it is asked for; the board reads the spans directly.
#[pyclass(module = "crm_triggers_native", frozen, sequence)]
pub(crate) struct Lines {
    data: Py<PyBytes>,
    spans: Arc<[(usize, usize)]>,
    /// The part of `spans` this sequence holds (a slice shares the spans).
    first: usize,
    len: usize,
}

impl Lines {
    /// The bytes of each line, in order, borrowed from the block.
    pub(crate) fn each<'py>(&'py self, py: Python<'py>) -> impl Iterator<Item = &'py [u8]> + 'py {
        let data = self.data.bind(py).as_bytes();
        self.spans[self.first..self.first + self.len]
            .iter()
            .map(move |&(start, end)| &data[start..end])
    }
}

#[pymethods]
impl Lines {
    fn __len__(&self) -> usize {
        self.len
    }

    fn __getitem__(&self, py: Python<'_>, index: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        if let Ok(slice) = index.downcast::<PySlice>() {
            let part = slice.indices(self.len as isize)?;
            if part.step != 1 {
                return Err(PyValueError::new_err("Lines: only slices of step 1"));
            }
            let (start, stop) = (part.start as usize, part.stop.max(part.start) as usize);
            let lines = Lines {
                data: self.data.clone_ref(py),
                spans: self.spans.clone(),
                first: self.first + start,
                len: stop - start,
            };
            return Ok(lines.into_py(py));
        }
        let at: isize = index.extract()?;
        let at = if at < 0 { at + self.len as isize } else { at };
        if at < 0 || at as usize >= self.len {
            return Err(pyo3::exceptions::PyIndexError::new_err(
                "Lines index out of range",
            ));
        }
        let (start, end) = self.spans[self.first + at as usize];
        Ok(PyBytes::new_bound(py, &self.data.bind(py).as_bytes()[start..end]).into_py(py))
    }

    /// Bytes the lines take in the block, line ends included (for a progress bar).
    fn size(&self) -> usize {
        match (self.len, &self.spans[self.first..self.first + self.len]) {
            (0, _) => 0,
            (_, spans) => spans[spans.len() - 1].1 + 1 - spans[0].0,
        }
    }

    fn __reduce__(slf: &Bound<'_, Self>) -> PyResult<(PyObject, (Vec<PyObject>,))> {
        // Pickled as the list of its lines: a record that crosses processes is bytes.
        let py = slf.py();
        let lines = slf
            .get()
            .each(py)
            .map(|l| PyBytes::new_bound(py, l).into_py(py));
        let list = py.import_bound("builtins")?.getattr("list")?.unbind();
        Ok((list, (lines.collect(),)))
    }
}

/// The lines of `data[..end]`, split at line feeds as `connectors.jsonl.read_line_blocks`
/// splits them: each without its carriage returns at the end, blank ones (only ASCII
/// white space) left out. Returns the lines, the numbers of those kept (None when none
/// was left out: `first`, `first + 1`, ...) and how many lines `data[..end]` had.
///
/// `data[..end]` normally ends with a line feed; its last line may lack one (the end
/// of a file).
#[pyfunction]
pub(crate) fn split_lines(
    py: Python<'_>,
    data: Bound<'_, PyBytes>,
    end: usize,
    first: u64,
) -> PyResult<(Lines, Option<Vec<u64>>, u64)> {
    let bytes = data.as_bytes();
    let block = bytes
        .get(..end)
        .ok_or_else(|| PyValueError::new_err("split_lines: end is beyond the data"))?;
    let mut spans = Vec::with_capacity(block.len() / 128 + 1);
    let mut numbers: Option<Vec<u64>> = None;
    let mut count = 0u64;
    let mut start = 0usize;
    let mut add = |start: usize, stop: usize, count: u64| {
        let mut stop = stop;
        while stop > start && block[stop - 1] == b'\r' {
            stop -= 1;
        }
        let blank = block[start..stop]
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c));
        if blank {
            if numbers.is_none() {
                numbers = Some((0..count).map(|n| first + n).collect());
            }
        } else {
            spans.push((start, stop));
            if let Some(numbers) = numbers.as_mut() {
                numbers.push(first + count);
            }
        }
    };
    for stop in memchr::memchr_iter(b'\n', block) {
        add(start, stop, count);
        count += 1;
        start = stop + 1;
    }
    if start < block.len() {
        add(start, block.len(), count);
        count += 1;
    }
    let len = spans.len();
    let lines = Lines {
        data: data.unbind(),
        spans: spans.into(),
        first: 0,
        len,
    };
    let _ = py;
    Ok((lines, numbers, count))
}
