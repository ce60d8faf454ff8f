import Cairn
import CairnStorage
import CairnTesting
import SystemPackage

let storeDirectory: FilePath = "/store"

/// A store on a simulated disk with a manual clock.
func makeStore(_ policy: FsyncPolicy = .always, disk: SimulatedFileSystem = SimulatedFileSystem(), clock: ManualClock = ManualClock()) throws -> (Store, SimulatedFileSystem, ManualClock) {
    let store = try Store.open(directory: storeDirectory, options: StoreOptions(fsyncPolicy: policy, segmentSize: 64 << 10, clock: clock, fileSystem: disk, activeExpiry: false))
    return (store, disk, clock)
}

func reopen(_ disk: SimulatedFileSystem, clock: ManualClock, policy: FsyncPolicy = .always) throws -> Store {
    try Store.open(directory: storeDirectory, options: StoreOptions(fsyncPolicy: policy, segmentSize: 64 << 10, clock: clock, fileSystem: disk, activeExpiry: false))
}
