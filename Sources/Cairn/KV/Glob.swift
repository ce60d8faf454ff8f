/// Redis's glob patterns (`KEYS`, `SCAN MATCH`): `*`, `?`, `[abc]`, `[^a]`, `[a-z]`, `\x`.
public enum Glob {
    /// True when `string` matches the glob `pattern` (Redis's `stringmatchlen`: `*`, `?`,
    /// `[...]` with ranges and `^`, `\\` escapes), byte for byte.
    public static func matches(_ pattern: ArraySlice<UInt8>, _ string: ArraySlice<UInt8>) -> Bool {
        var p = pattern.startIndex
        var s = string.startIndex
        while p < pattern.endIndex {
            let c = pattern[p]
            switch c {
            case UInt8(ascii: "*"):
                while p + 1 < pattern.endIndex && pattern[p + 1] == UInt8(ascii: "*") { p += 1 }
                if p + 1 == pattern.endIndex { return true }
                var t = s
                while t <= string.endIndex {
                    if matches(pattern[(p + 1)...], string[t...]) { return true }
                    t += 1
                }
                return false
            case UInt8(ascii: "?"):
                if s == string.endIndex { return false }
                s += 1
            case UInt8(ascii: "["):
                if s == string.endIndex { return false }
                p += 1
                let negate = p < pattern.endIndex && pattern[p] == UInt8(ascii: "^")
                if negate { p += 1 }
                var matched = false
                while p < pattern.endIndex && pattern[p] != UInt8(ascii: "]") {
                    if pattern[p] == UInt8(ascii: "\\") && p + 1 < pattern.endIndex {
                        p += 1
                        if pattern[p] == string[s] { matched = true }
                    } else if p + 2 < pattern.endIndex && pattern[p + 1] == UInt8(ascii: "-") && pattern[p + 2] != UInt8(ascii: "]") {
                        let (low, high) = (min(pattern[p], pattern[p + 2]), max(pattern[p], pattern[p + 2]))
                        if string[s] >= low && string[s] <= high { matched = true }
                        p += 2
                    } else if pattern[p] == string[s] {
                        matched = true
                    }
                    p += 1
                }
                if p == pattern.endIndex { p -= 1 }  // unterminated class: treat the end as ']'
                if matched == negate { return false }
                s += 1
            case UInt8(ascii: "\\") where p + 1 < pattern.endIndex:
                p += 1
                if s == string.endIndex || pattern[p] != string[s] { return false }
                s += 1
            default:
                if s == string.endIndex || c != string[s] { return false }
                s += 1
            }
            p += 1
        }
        return s == string.endIndex
    }

    /// ``matches(_:_:)-(ArraySlice<UInt8>,ArraySlice<UInt8>)`` for whole byte strings: `Glob.matches("user:*", key)`.
    public static func matches(_ pattern: Bytes, _ string: Bytes) -> Bool {
        matches(pattern.storage[...], string.storage[...])
    }
}
