"""A desktop notification server for the real-window tests: it owns org.freedesktop.Notifications on the session
bus, writes each notification QGIS sends (QgisApp's "Task complete" / "Task failed") as a JSON line to LOG, and
runs COMMAND meanwhile; it exits when COMMAND does.

    dbus-run-session -- /usr/bin/python3 notification_server.py LOG -- COMMAND...

Runs with the system Python (dbus-python and GLib's bindings), not the project's.
"""
import json
import subprocess
import sys

import dbus
import dbus.service
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

INTERFACE = 'org.freedesktop.Notifications'


class Notifications(dbus.service.Object):
    def __init__(self, bus, log):
        super().__init__(bus, '/org/freedesktop/Notifications')
        self.log, self.count = log, 0

    @dbus.service.method(INTERFACE, in_signature='susssasa{sv}i', out_signature='u')
    def Notify(self, app, replaces, icon, summary, body, actions, hints, timeout):  # noqa: N802 (D-Bus names)
        self.count += 1
        with open(self.log, 'a', encoding='utf-8') as handle:
            handle.write(json.dumps({'app': str(app), 'summary': str(summary), 'body': str(body)}) + '\n')
        return self.count

    @dbus.service.method(INTERFACE, out_signature='as')
    def GetCapabilities(self):  # noqa: N802
        return ['body']

    @dbus.service.method(INTERFACE, out_signature='ssss')
    def GetServerInformation(self):  # noqa: N802
        return 'enmap-compress-tests', 'enmap-compress', '1', '1.2'


def main(argv):
    log, command = argv[0], argv[argv.index('--') + 1:]
    DBusGMainLoop(set_as_default=True)
    bus = dbus.SessionBus()
    name = dbus.service.BusName(INTERFACE, bus)  # noqa: F841 (owned while it lives)
    Notifications(bus, log)
    proc = subprocess.Popen(command)
    loop = GLib.MainLoop()
    GLib.timeout_add(200, lambda: proc.poll() is None or loop.quit())
    loop.run()
    return proc.returncode


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
