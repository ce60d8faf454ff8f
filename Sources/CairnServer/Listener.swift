import NIOCore
import NIOPosix

/// The TCP listening socket both servers use: the same socket options, one handler per
/// accepted connection.
enum Listener {
    static func bind(
        group: MultiThreadedEventLoopGroup, host: String, port: Int,
        handler: @escaping @Sendable (Channel) -> any ChannelHandler
    ) throws -> Channel {
        try ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 511)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(ChannelOptions.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(handler(channel))
                }
            }
            .bind(host: host, port: port).wait()
    }
}
