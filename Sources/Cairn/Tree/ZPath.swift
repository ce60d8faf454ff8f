/// ZooKeeper's path rules (`PathUtils.validatePath`): absolute, no empty, "." or ".." segment,
/// no trailing slash but on the root, no null or control characters, nothing in the ranges
/// ZooKeeper refuses. One pass over the scalars, no allocation.
public enum ZPath {
    /// Validates `path`; `sequential` allows a trailing slash (the server appends the suffix).
    public static func validate(_ path: String, sequential: Bool = false) throws(TreeError) {
        var scalars = path.unicodeScalars.makeIterator()
        guard scalars.next() == "/" else { throw .badArguments }
        var segmentLength = 0
        var dots = 0          // how many leading dots the segment has, while it is only dots
        var onlyDots = true
        var sawAny = false
        while let scalar = scalars.next() {
            sawAny = true
            let v = scalar.value
            if v == 0 || v < 0x20 || (v >= 0x7F && v <= 0x9F) || (v >= 0xD800 && v <= 0xF8FF) || (v >= 0xFFF0 && v <= 0xFFFF) {
                throw .badArguments
            }
            if scalar == "/" {
                if segmentLength == 0 || (onlyDots && dots <= 2) { throw .badArguments }
                segmentLength = 0
                dots = 0
                onlyDots = true
            } else {
                segmentLength += 1
                if scalar == "." { dots += 1 } else { onlyDots = false }
            }
        }
        if !sawAny { return }  // "/"
        if segmentLength == 0 { if sequential { return } else { throw .badArguments } }
        if onlyDots && dots <= 2 { throw .badArguments }
    }

    /// The parent of a validated path other than the root.
    public static func parent(_ path: String) -> String {
        // On the UTF-8 view: a `Character` search would run grapheme breaking over the path.
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")), slash != path.utf8.startIndex else { return "/" }
        return String(path[..<slash])
    }

    /// The last segment of a validated path other than the root.
    public static func name(_ path: String) -> String {
        String(path[path.utf8.index(after: path.utf8.lastIndex(of: UInt8(ascii: "/"))!)...])
    }
}
