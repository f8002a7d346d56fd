"""A TCP proxy that can black-hole its links, for scripts/chaos: a pulled cable or a dead
switch port, where nothing is refused or reset and bytes just stop arriving.

  python3 proxy.py --map LISTEN_PORT:TARGET_PORT [--map ...]

SIGUSR1 blocks every link (open connections stay open, new ones are accepted, every byte in
either direction is dropped); SIGUSR2 lets bytes through again. A link whose target refuses or
closes is closed on the client side too, as a real path would.
"""

import argparse
import asyncio
import signal

blocked = False


async def pump(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if not blocked:
                writer.write(data)
                await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def serve(listen, target):
    async def link(cr, cw):
        try:
            tr, tw = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            cw.close()
            return
        await asyncio.gather(pump(cr, tw), pump(tr, cw))

    server = await asyncio.start_server(link, "127.0.0.1", listen)
    await server.serve_forever()


def main():
    p = argparse.ArgumentParser(prog="proxy")
    p.add_argument("--map", action="append", required=True)
    a = p.parse_args()

    def set_blocked(b):
        global blocked
        blocked = b

    loop = asyncio.new_event_loop()
    loop.add_signal_handler(signal.SIGUSR1, set_blocked, True)
    loop.add_signal_handler(signal.SIGUSR2, set_blocked, False)
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    for m in a.map:
        listen, target = (int(x) for x in m.split(":"))
        loop.create_task(serve(listen, target))
    loop.run_forever()


if __name__ == "__main__":
    main()
