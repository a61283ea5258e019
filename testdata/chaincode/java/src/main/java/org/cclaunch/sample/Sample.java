package org.cclaunch.sample;

import java.io.IOException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.Arrays;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

/**
 * Sample Java "chaincode" for cclaunch tests. JDK only: it does not speak the
 * chaincode protocol, it only reports what the launcher gave it (args, env,
 * TLS files) and whether the peer address accepts TCP.
 *
 * <p>Fabric starts a Java chaincode as: start --peerAddress &lt;host:port&gt;
 */
public final class Sample {
    private static final String NAME = "sample-java";
    private static final byte[] BEGIN = "-----BEGIN".getBytes(StandardCharsets.US_ASCII);

    public static void main(String[] args) throws Exception {
        System.out.println(NAME + " starting args=" + jsonList(args));

        CountDownLatch stop = new CountDownLatch(1);
        installSignalHandlers(stop);

        String addr = peerAddress(args);
        for (String k : new String[] {"CORE_CHAINCODE_ID_NAME", "CORE_PEER_TLS_ENABLED", "CORE_PEER_LOCALMSPID"}) {
            String v = System.getenv(k);
            System.out.println("env " + k + "=" + (v == null ? "" : v));
        }

        if ("true".equals(System.getenv("CORE_PEER_TLS_ENABLED"))) {
            String problem = checkTls();
            System.out.println(problem == null ? "tls ok" : "tls bad: " + problem);
        }

        System.out.println(connect(addr));
        System.out.println(NAME + " ready");
        stop.await();
    }

    /**
     * SIGTERM/SIGINT print "stopping" and exit 0 (a plain shutdown hook would
     * exit 143/130). sun.misc.Signal is reached by reflection so that javac
     * prints no "internal proprietary API" warnings; a shutdown hook is the
     * fallback on a JDK without it.
     */
    private static void installSignalHandlers(CountDownLatch stop) {
        Runnable onSignal = () -> {
            System.out.println(NAME + " stopping");
            System.out.flush();
            stop.countDown();
            Runtime.getRuntime().halt(0);
        };
        try {
            Class<?> signalClass = Class.forName("sun.misc.Signal");
            Class<?> handlerClass = Class.forName("sun.misc.SignalHandler");
            Object handler = Proxy.newProxyInstance(
                    Sample.class.getClassLoader(),
                    new Class<?>[] {handlerClass},
                    (proxy, method, margs) -> {
                        if ("handle".equals(method.getName())) {
                            onSignal.run();
                        }
                        return null;
                    });
            Method handle = signalClass.getMethod("handle", signalClass, handlerClass);
            for (String name : new String[] {"TERM", "INT"}) {
                handle.invoke(null, signalClass.getConstructor(String.class).newInstance(name), handler);
            }
        } catch (ReflectiveOperationException | RuntimeException e) {
            Runtime.getRuntime().addShutdownHook(new Thread(() -> System.out.println(NAME + " stopping")));
        }
    }

    /** Accepts --peerAddress X, --peerAddress=X and -a X (the Fabric Java shim's spellings). */
    static String peerAddress(String[] args) {
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.startsWith("--peerAddress=")) {
                return a.substring("--peerAddress=".length());
            }
            if ((a.equals("--peerAddress") || a.equals("-a")) && i + 1 < args.length) {
                return args[i + 1];
            }
        }
        return "";
    }

    private static String connect(String addr) {
        if (addr.isEmpty()) {
            return "peer unreachable " + addr + ": no --peerAddress in args";
        }
        int idx = addr.lastIndexOf(':');
        int port;
        try {
            port = Integer.parseInt(addr.substring(idx + 1));
        } catch (NumberFormatException | IndexOutOfBoundsException e) {
            return "peer unreachable " + addr + ": bad address";
        }
        String host = addr.substring(0, Math.max(idx, 0)).replaceAll("^\\[(.*)\\]$", "$1");
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress(host, port), 3000);
            return "peer connected " + addr;
        } catch (IOException | IllegalArgumentException e) {
            return "peer unreachable " + addr + ": " + e;
        }
    }

    /** Returns null when the TLS material is consistent; never includes file contents. */
    static String checkTls() {
        Map<String, byte[]> files = new LinkedHashMap<>();
        for (String k : new String[] {
                "CORE_TLS_CLIENT_KEY_PATH", "CORE_TLS_CLIENT_CERT_PATH",
                "CORE_TLS_CLIENT_KEY_FILE", "CORE_TLS_CLIENT_CERT_FILE",
                "CORE_PEER_TLS_ROOTCERT_FILE"}) {
            String path = System.getenv(k);
            if (path == null || path.isEmpty()) {
                return k + " not set";
            }
            try {
                files.put(k, Files.readAllBytes(Paths.get(path)));
            } catch (IOException e) {
                return k + ": cannot read " + path + ": " + e.getClass().getSimpleName();
            }
        }
        String[][] pairs = {
            {"CORE_TLS_CLIENT_KEY_PATH", "CORE_TLS_CLIENT_KEY_FILE"},
            {"CORE_TLS_CLIENT_CERT_PATH", "CORE_TLS_CLIENT_CERT_FILE"},
        };
        for (String[] p : pairs) {
            String text = new String(files.get(p[0]), StandardCharsets.ISO_8859_1).replaceAll("\\s+", "");
            byte[] decoded;
            try {
                decoded = Base64.getDecoder().decode(text);
            } catch (IllegalArgumentException e) {
                return p[0] + " is not valid base64";
            }
            byte[] pem = files.get(p[1]);
            if (!Arrays.equals(decoded, pem)) {
                return "base64-decoded " + p[0] + " differs from " + p[1]
                        + " (" + decoded.length + " vs " + pem.length + " bytes)";
            }
            if (!startsWithBegin(decoded)) {
                return "decoded " + p[0] + " is not PEM";
            }
        }
        for (String k : new String[] {"CORE_TLS_CLIENT_KEY_FILE", "CORE_TLS_CLIENT_CERT_FILE", "CORE_PEER_TLS_ROOTCERT_FILE"}) {
            if (!startsWithBegin(files.get(k))) {
                return k + " is not PEM";
            }
        }
        return null;
    }

    private static boolean startsWithBegin(byte[] b) {
        return b.length >= BEGIN.length && Arrays.equals(Arrays.copyOf(b, BEGIN.length), BEGIN);
    }

    private static String jsonList(String[] args) {
        StringBuilder sb = new StringBuilder("[");
        for (int i = 0; i < args.length; i++) {
            if (i > 0) {
                sb.append(',');
            }
            sb.append('"');
            for (char c : args[i].toCharArray()) {
                switch (c) {
                    case '"': sb.append("\\\""); break;
                    case '\\': sb.append("\\\\"); break;
                    case '\n': sb.append("\\n"); break;
                    case '\t': sb.append("\\t"); break;
                    default:
                        if (c < 0x20) {
                            sb.append(String.format("\\u%04x", (int) c));
                        } else {
                            sb.append(c);
                        }
                }
            }
            sb.append('"');
        }
        return sb.append(']').toString();
    }
}
