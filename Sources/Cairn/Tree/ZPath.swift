/// ZooKeeper's path rules (`PathUtils.validatePath`): absolute, no empty, "." or ".." segment,
/// no trailing slash but on the root, no null or control characters, nothing in the ranges
/// ZooKeeper refuses.
public enum ZPath {
    /// Validates `path`; `sequential` allows a trailing slash (the server appends the suffix).
    public static func validate(_ path: String, sequential: Bool = false) throws(TreeError) {
        let checked = sequential ? path + "1" : path
        guard checked.hasPrefix("/") else { throw .badArguments }
        if checked == "/" { return }
        guard !checked.hasSuffix("/") else { throw .badArguments }
        for segment in checked.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            guard !segment.isEmpty, segment != ".", segment != ".." else { throw .badArguments }
        }
        for scalar in checked.unicodeScalars {
            let v = scalar.value
            if v == 0 || (v > 0 && v < 0x20) || (v >= 0x7F && v <= 0x9F) || (v >= 0xD800 && v <= 0xF8FF) || (v >= 0xFFF0 && v <= 0xFFFF) {
                throw .badArguments
            }
        }
    }

    /// The parent of a validated path other than the root.
    public static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }

    /// The last segment of a validated path other than the root.
    public static func name(_ path: String) -> String {
        String(path[path.index(after: path.lastIndex(of: "/")!)...])
    }
}
