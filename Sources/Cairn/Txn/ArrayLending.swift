extension Array {
    /// Calls `body` with each element in order, lent from the array's own storage: moved out
    /// for the call and back in after it, so that none is copied.
    ///
    /// Why: an element read out of an array and passed to a call the optimizer cannot see
    /// through is copied first (the callee might change the array), which retains and releases
    /// every reference it holds: a batched LPUSH's operation (key, values) three times, twice a
    /// txn, once to encode it and once to apply it.
    ///
    /// The storage must be unique to be lent from (it is copied first otherwise, as any
    /// mutation of a shared array is), and `body` cannot reach the array while it runs.
    ///
    /// ```swift
    /// var operations: [Operation] = [.push("q", ["a"], left: true, onlyIfExists: false)]
    /// operations.lendEach { operation in encode(operation, &out) }
    /// ```
    @inlinable
    mutating func lendEach(_ body: (Element) -> Void) {
        withUnsafeMutableBufferPointer { buffer in
            for position in buffer.indices {
                let element = buffer.moveElement(from: position)
                body(element)
                buffer.initializeElement(at: position, to: element)
            }
        }
    }
}
